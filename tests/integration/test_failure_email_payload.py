"""The payload in the failure email, end to end: real worker, real SMTP (aiosmtpd).

PlanOmatic's reference: after the last failed attempt the notification email includes
the webhook payload. Each delivery shows its event's data as pretty JSON in the
publisher's key order, cut at 64 KiB with a note, a grouped email at most 1 MiB of them,
and no secret value of the subscription anywhere, whatever the publisher put in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from app.core.masking import MASK, Redactor
from app.delivery.email_payload import render_payload
from tests.delivery import (
    OpenService,
    Service,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
)
from tests.payloads import order_status_payload
from tests.receivers import Receiver, respond
from tests.smtp import SmtpTestServer

API_KEY_VALUE = "key-value-5f3a9c1e"
HEADER_VALUE = "Bearer header-value-7d2b4e8a"


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


def payload_blocks(text: str) -> list[str]:
    """Each delivery's payload lines (under its "Payload" label), unindented."""
    blocks = []
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.startswith("Payload") and line.endswith(":"):
            block = []
            for payload_line in lines[index + 1 :]:
                if not payload_line.startswith("  "):
                    break
                block.append(payload_line[2:])
            blocks.append("\n".join(block))
    return blocks


def of_size(size: int, **fields: Any) -> dict[str, Any]:
    """A valid payload whose pretty JSON is ``size`` bytes, by its ``filler``."""
    rendered = render_payload(order_status_payload(filler="", **fields), Redactor(()))
    without = len(rendered.text.encode())
    return order_status_payload(filler="x" * (size - without), **fields)


async def failed_for_good(service: Service, payload: dict[str, Any], subject: str) -> str:
    """Publish ``payload`` and wait for its one delivery to fail for good; its event id."""
    event = await service.publish_event(payload, subject=subject)
    await service.wait_for_status(event["deliveries"][0]["id"], "FAILED")
    return str(event["id"])


async def test_the_email_shows_the_payload_as_pretty_json_in_the_publishers_order(
    open_service: OpenService, smtp: SmtpTestServer
) -> None:
    # Given a receiver that always fails, and a payload with non-ASCII text whose keys
    # PostgreSQL's jsonb would reorder (it sorts them by length)
    service = await open_service(smtp_url=smtp.url, retry_interval_seconds=0.2, max_attempts=2)
    payload = order_status_payload(
        order_status="scheduled", order_notes="Clé sous le paillasson; code 4 €", zeta=1, id=2
    )
    with Receiver(default=respond(500)) as receiver:
        await service.subscribe(receiver.url_for("/hook"))

        # When its delivery fails its last attempt
        event_id = await failed_for_good(service, payload, "ord_41")

        # Then the email shows the payload, pretty, keys in the publisher's order
        [mail] = await smtp.wait_for_async(1)
    assert f"Event id:    {event_id}" in mail.text
    assert '\nPayload:\n  {\n    "request_id": 5001,\n' in mail.text
    [block] = payload_blocks(mail.text)
    assert block == json.dumps(payload, indent=2, ensure_ascii=False)
    assert "Clé sous le paillasson; code 4 €" in mail.text


async def test_a_300_kib_payload_is_cut_at_64_kib_with_a_note(
    open_service: OpenService, smtp: SmtpTestServer
) -> None:
    # Given a publisher allowed larger payloads, and one of 300 KiB as the email shows it
    service = await open_service(smtp_url=smtp.url, max_attempts=1, max_payload_bytes=512 * 1024)
    payload = of_size(300 * 1024)
    with Receiver(default=respond(500)) as receiver:
        await service.subscribe(receiver.url_for("/hook"))

        # When its delivery fails for good
        event_id = await failed_for_good(service, payload, "ord_big")

        # Then its email shows the first 64 KiB and says where the rest is
        [mail] = await smtp.wait_for_async(1)
    query = f'query {{ event(id: "{event_id}") {{ payload }} }}'
    note = f"payload cut at 64 KiB of 300 KiB; the full event: {query}"
    assert "Payload (cut at 64 KiB of 300 KiB):\n" in mail.text
    assert f"\n  [{note}]\n" in mail.text
    [block] = payload_blocks(mail.text)
    shown = block.rpartition("\n[")[0]
    assert json.dumps(payload, indent=2).startswith(shown)
    assert 64 * 1024 - 4 < len(shown.encode()) <= 64 * 1024


async def test_a_grouped_email_stops_its_payloads_at_1_mib_and_still_goes_through_smtp(
    open_service: OpenService, smtp: SmtpTestServer
) -> None:
    # Given a grouping window and 20 events of about 59 KiB each: 17 fit into 1 MiB
    service = await open_service(smtp_url=smtp.url, email_window_seconds=5.0, max_attempts=1)
    with Receiver(default=respond(500)) as receiver:
        await service.subscribe(receiver.url_for("/hook"))

        # When their deliveries all fail within the window
        events = [
            await service.publish_event(
                order_status_payload(filler=f"{n:02d}" * 29 * 1024), subject=f"ord_{n}"
            )
            for n in range(20)
        ]
        for event in events:
            await service.wait_for_status(event["deliveries"][0]["id"], "FAILED")
        event_ids = [event["id"] for event in events]

        # Then one email of about a megabyte arrives
        [mail] = await smtp.wait_for_async(1, timeout=10.0)
    assert len(mail.raw) > 1024 * 1024
    text = mail.text
    assert "Delivery 20 of 20" in text
    # with the first 17 payloads, and the other 3 counted and named by their events
    assert "The payloads of 3 of these 20 deliveries are left out" in " ".join(text.split())
    blocks = payload_blocks(text)
    assert len(blocks) == 17
    for n, block in enumerate(blocks):
        assert json.loads(block)["filler"].startswith(f"{n:02d}{n:02d}")
    assert sum(len(block.encode()) for block in blocks) <= 1024 * 1024
    for event_id in event_ids[17:]:
        assert f'the full event: query {{ event(id: "{event_id}") {{ payload }} }}' in text


async def test_an_api_key_value_header_value_or_signing_secret_in_the_payload_is_masked(
    open_service: OpenService, smtp: SmtpTestServer
) -> None:
    # Given a subscription with an API key parameter and a custom header, and a publisher
    # that (by mistake) puts their values and the signing secret into the payload and the
    # subject
    service = await open_service(smtp_url=smtp.url, max_attempts=1)
    with Receiver(default=respond(500)) as receiver:
        subscription = await service.subscribe(
            receiver.url_for("/hook"),
            api_key_params=[{"name": "api_key", "value": API_KEY_VALUE}],
            headers=[{"name": "Authorization", "value": HEADER_VALUE}],
        )
        payload = order_status_payload(
            order_notes=f"call back with api_key={API_KEY_VALUE}",
            external_id=subscription.secret,
            client_token=HEADER_VALUE,
        )

        # When its delivery fails for good
        await failed_for_good(service, payload, f"ord {API_KEY_VALUE}")

        # Then the email masks every occurrence, and shows the rest of the payload
        [mail] = await smtp.wait_for_async(1)
    assert f'"order_notes": "call back with api_key={MASK}"' in mail.text
    assert f'"external_id": "{MASK}"' in mail.text
    assert f'"client_token": "{MASK}"' in mail.text
    assert f"Subject:     ord {MASK}\n" in mail.text
    assert '"order_status": "ordered"' in mail.text
    everything = mail.text + mail.raw.decode("utf-8", errors="replace")
    secrets = (API_KEY_VALUE, HEADER_VALUE, subscription.secret)
    for secret in (*secrets, subscription.secret.removeprefix("whsec_")):
        assert secret not in everything


async def test_without_the_delivered_body_the_email_shows_the_stored_payload(
    open_service: OpenService, smtp: SmtpTestServer
) -> None:
    # Given a failed delivery whose event's body is gone before its email is rendered
    # (retention drops the bodies of events whose deliveries all succeeded since)
    service = await open_service(smtp_url=smtp.url, email_window_seconds=1.0, max_attempts=1)
    payload = order_status_payload(order_status="completed")
    with Receiver(default=respond(500)) as receiver:
        await service.subscribe(receiver.url_for("/hook"))
        event_id = await failed_for_good(service, payload, "ord_1")
        await service.sql("UPDATE events SET body = NULL WHERE id = %(id)s", id=event_id)

        # When the email goes out
        [mail] = await smtp.wait_for_async(1, timeout=4.0)

    # Then it shows the stored payload, equal as JSON
    [block] = payload_blocks(mail.text)
    assert json.loads(block) == payload


async def test_a_secret_that_cannot_be_decrypted_leaves_the_payloads_out_not_the_email(
    open_service: OpenService, smtp: SmtpTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a failed delivery whose subscription's API key value can no longer be
    # decrypted when its email is rendered (a master key dropped too early)
    service = await open_service(smtp_url=smtp.url, email_window_seconds=1.0, max_attempts=1)
    with Receiver(default=respond(500)) as receiver:
        subscription = await service.subscribe(
            receiver.url_for("/hook"), api_key_params=[{"name": "api_key", "value": API_KEY_VALUE}]
        )
        await failed_for_good(
            service, order_status_payload(order_notes=f"key {API_KEY_VALUE}"), "ord_1"
        )
        await service.sql(
            "UPDATE subscriptions SET api_key_params = "
            "jsonb_set(api_key_params, '{0,value}', '\"v1:unknownkey:AAAA\"') WHERE id = %(id)s",
            id=subscription.id,
        )

        # When the email goes out
        [mail] = await smtp.wait_for_async(1, timeout=4.0)

    # Then it reports the failure without the payload it could not mask, and says why
    # in the log
    assert "Payload:     unavailable; the full event: query" in mail.text
    assert API_KEY_VALUE not in mail.text
    assert "failure email without payloads" in caplog.text
