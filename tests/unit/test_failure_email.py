from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest

from app.core.masking import MASK, Redactor
from app.delivery.email_payload import (
    EMAIL_PAYLOAD_CAP_BYTES,
    render_payload,
    values_to_redact,
)
from app.delivery.failure_email import (
    AttemptLine,
    FailedDelivery,
    FailureNotice,
    notice_id,
    render_failure_email,
)
from tests.payloads import order_status_payload

MASKED_URL = "https://hooks.example.com/orders?tenant=acme&api_key=••••"
STARTED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def attempts(count: int) -> list[AttemptLine]:
    return [
        AttemptLine(
            number=n,
            started_at=STARTED + timedelta(minutes=6 * (n - 1)),
            response_status=500 if n % 2 else None,
            error=None if n % 2 else "connection refused",
        )
        for n in range(1, count + 1)
    ]


def delivery(n: int, *, subject: str | None = "order 42") -> FailedDelivery:
    return FailedDelivery(
        delivery_id=f"dlv_{n}",
        webhook_id=f"msg_{n}",
        event_id=f"evt_{n}",
        subject=subject,
        attempts=attempts(3),
    )


def notice(*deliveries: FailedDelivery, reason: str | None = None) -> FailureNotice:
    return FailureNotice(
        to="ops@customer.example",
        sender="PlanOmatic Webhooks <webhooks@planomatic.example>",
        subscription_id="sub_1",
        webhook_key="ORDER_STATUS",
        webhook_name="Order Status",
        callback_url_masked=MASKED_URL,
        deliveries=deliveries,
        reason=reason,
    )


def body_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert isinstance(part, EmailMessage)
    text = part.get_content()
    assert isinstance(text, str)
    return text


def test_one_delivery_names_everything_the_contract_asks_for() -> None:
    # given one failed delivery
    message = render_failure_email(notice(delivery(1)))

    # then the email names the webhook, URL, subscription, event and attempts
    body = body_of(message)
    assert message["To"] == "ops@customer.example"
    assert message["From"] == "PlanOmatic Webhooks <webhooks@planomatic.example>"
    for expected in (
        "Order Status (ORDER_STATUS)",
        MASKED_URL,
        "sub_1",
        "evt_1",
        "order 42",
        "dlv_1",
        "msg_1",
        "2024-05-01T12:00:00Z  HTTP 500",
        "2024-05-01T12:06:00Z  no response  error: connection refused",
    ):
        assert expected in body


def test_subject_reads_well_for_one_delivery() -> None:
    message = render_failure_email(notice(delivery(1)))

    assert message["Subject"] == (
        "[PlanOmatic Webhooks] Delivery of Order Status to https://hooks.example.com/orders failed"
    )


def test_subject_and_body_count_many_deliveries() -> None:
    message = render_failure_email(notice(delivery(1), delivery(2), delivery(3)))

    body = body_of(message)
    assert message["Subject"] == (
        "[PlanOmatic Webhooks] 3 deliveries of Order Status to "
        "https://hooks.example.com/orders failed"
    )
    assert "could not deliver 3 events" in body
    assert "these deliveries are now marked FAILED" in " ".join(body.split())
    for n in (1, 2, 3):
        assert f"Delivery {n} of 3" in body
        assert f"evt_{n}" in body and f"dlv_{n}" in body
    assert 'redeliver(deliveryId: "<delivery id>")' in body


def test_the_masked_url_is_used_verbatim_and_nowhere_unmasked() -> None:
    message = render_failure_email(notice(delivery(1)))

    body = body_of(message)
    assert f"Callback URL:    {MASKED_URL}\n" in body
    assert "api_key=••••" in body
    # The subject carries no query string at all.
    assert "api_key" not in message["Subject"]


def test_attempts_are_listed_in_order_of_their_number() -> None:
    shuffled = list(reversed(attempts(4)))
    message = render_failure_email(
        notice(FailedDelivery("dlv_1", "msg_1", "evt_1", None, shuffled))
    )

    body = body_of(message)
    positions = [body.index(f"  #{n}  ") for n in (1, 2, 3, 4)]
    assert positions == sorted(positions)
    assert "Subject:     (none)" in body


def test_times_are_shown_in_utc() -> None:
    paris = timezone(timedelta(hours=2))
    line = AttemptLine(
        1, datetime(2024, 5, 1, 14, 30, 5, 123, tzinfo=paris), 503, "Service Unavailable"
    )

    body = body_of(render_failure_email(notice(FailedDelivery("d", "w", "e", "s", [line]))))

    assert "#1  2024-05-01T12:30:05Z  HTTP 503  error: Service Unavailable" in body


def test_a_multi_line_error_stays_on_its_attempt_line() -> None:
    line = AttemptLine(1, STARTED, None, "timed out\nafter 15 s\n\nFake: header")

    body = body_of(render_failure_email(notice(FailedDelivery("d", "w", "e", "s", [line]))))

    assert "no response  error: timed out after 15 s Fake: header" in body
    assert "\nFake: header" not in body


def test_reason_is_stated_when_given() -> None:
    reason = "the endpoint answered 410 Gone, so the subscription was deactivated"

    body = body_of(render_failure_email(notice(delivery(1), reason=reason)))

    assert f"Why delivery stopped: {reason}." in " ".join(body.split())


def test_next_steps_explain_that_nothing_more_is_sent_and_how_to_redeliver() -> None:
    body = body_of(render_failure_email(notice(delivery(1))))

    assert "Nothing more will be sent for this delivery" in body
    assert 'redeliver(deliveryId: "dlv_1")' in body
    # An hour before the first attempt, on the hour, covers when the delivery was created.
    assert 'redeliverFailed(subscriptionId: "sub_1", since: "2024-05-01T11:00:00Z")' in body


def test_message_id_is_deterministic_from_the_delivery_ids() -> None:
    first = render_failure_email(notice(delivery(1), delivery(2)))
    again = render_failure_email(notice(delivery(2), delivery(1)))
    other = render_failure_email(notice(delivery(1)))

    assert first["Message-ID"] == again["Message-ID"]
    assert first["Message-ID"] != other["Message-ID"]
    assert (
        first["Message-ID"] == f"<{notice_id(notice(delivery(1), delivery(2)))}@planomatic.example>"
    )
    assert first["X-PlanOmatic-Notice-Id"] == notice_id(notice(delivery(1), delivery(2)))


def test_rendering_is_pure() -> None:
    given = notice(delivery(1))

    assert render_failure_email(given).as_bytes() == render_failure_email(given).as_bytes()


def test_an_empty_notice_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        render_failure_email(notice())


API_KEY_VALUE = "key-value-5f3a9c1e"


def flat(text: str) -> str:
    """Whitespace collapsed, so wrapped sentences can be searched."""
    return " ".join(text.split())


REDACT = Redactor(
    values_to_redact(header_values=[], api_key_values=[API_KEY_VALUE], signing_secrets=[])
)


def with_payload(n: int, payload: dict[str, Any]) -> FailedDelivery:
    return replace(delivery(n), payload=render_payload(payload, REDACT))


def shown_bytes(delivery: FailedDelivery) -> int:
    assert delivery.payload is not None
    return delivery.payload.shown_bytes


def payload_block(body: str) -> str:
    """The indented lines under the first "Payload" label, unindented."""
    lines = body.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("Payload")) + 1
    block = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        block.append(line[2:])
    return "\n".join(block)


def test_each_delivery_shows_its_payload_as_pretty_json() -> None:
    payload = order_status_payload(order_status="scheduled", order_notes="Ménage à 3 €")

    body = body_of(render_failure_email(notice(with_payload(1, payload))))

    assert '\nPayload:\n  {\n    "request_id": 5001,\n' in body
    assert payload_block(body) == json.dumps(payload, indent=2, ensure_ascii=False)
    assert "Ménage à 3 €" in body


def test_a_cut_payload_says_so_and_how_to_read_the_whole_event() -> None:
    # Given a payload of 300 KiB as the email would show it
    without_filler = len(render_payload(order_status_payload(filler=""), REDACT).text.encode())
    payload = order_status_payload(filler="x" * (300 * 1024 - without_filler))

    body = body_of(render_failure_email(notice(with_payload(1, payload))))

    note = (
        'payload cut at 64 KiB of 300 KiB; the full event: query { event(id: "evt_1") { payload } }'
    )
    assert "Payload (cut at 64 KiB of 300 KiB):\n" in body
    assert f"\n  [{note}]\n" in body
    assert len(payload_block(body).split("\n[")[0].encode()) <= 64 * 1024


def test_a_grouped_email_shows_payloads_up_to_its_total_and_counts_the_rest() -> None:
    # Given 20 deliveries whose payloads take about 59 KiB each: 17 fit into 1 MiB
    deliveries = [
        with_payload(n, order_status_payload(filler=f"{n:02d}" * 29 * 1024)) for n in range(20)
    ]
    sizes = [shown_bytes(d) for d in deliveries]
    fitting = next(k for k in range(21) if sum(sizes[: k + 1]) > EMAIL_PAYLOAD_CAP_BYTES)
    assert fitting == 17

    body = body_of(render_failure_email(notice(*deliveries)))

    # Then the first 17 show theirs, the last 3 name their events without them
    for n in range(fitting):
        assert f'"filler": "{n:02d}{n:02d}' in body
    for n in range(fitting, 20):
        assert f'"filler": "{n:02d}{n:02d}' not in body
        assert (
            "Payload:     left out (this email already shows 1 MiB of payloads);\n"
            f'             the full event: query {{ event(id: "evt_{n}") {{ payload }} }}'
        ) in body
    assert "The payloads of 3 of these 20 deliveries are left out" in flat(body)
    assert (
        sum(len(line.encode()) for line in body.split("\n") if line.startswith('    "filler"'))
        < EMAIL_PAYLOAD_CAP_BYTES
    )


def test_after_the_first_payload_left_out_no_later_one_is_squeezed_in() -> None:
    # Given payloads that leave the email a few KiB of room, then one that does not fit,
    # then one small enough for that room
    big = with_payload(1, order_status_payload(filler="b" * 64 * 1024))
    medium = with_payload(2, order_status_payload(filler="m" * 58 * 1024))
    small = with_payload(3, order_status_payload(order_status="completed"))
    assert (
        15 * shown_bytes(big) + shown_bytes(medium) + shown_bytes(small) < EMAIL_PAYLOAD_CAP_BYTES
    )

    body = body_of(render_failure_email(notice(*[big] * 15, medium, big, small)))

    # Then the small one is left out too: payloads stop at one point
    assert '"filler": "mmm' in body
    assert '"order_status": "completed"' not in body
    assert "The payloads of 2 of these 18 deliveries are left out" in flat(body)


def test_a_payload_that_could_not_be_read_is_said_to_be_unavailable() -> None:
    body = body_of(render_failure_email(notice(delivery(1))))

    assert (
        'Payload:     unavailable; the full event: query { event(id: "evt_1") { payload } }' in body
    )


def test_an_api_key_value_is_masked_in_the_payload_subject_and_errors() -> None:
    # Given a publisher (or a receiver's error) repeating the subscription's API key value
    payload = order_status_payload(order_notes=f"use {API_KEY_VALUE} to call back")
    failed = replace(
        with_payload(1, payload),
        subject=f"ord {API_KEY_VALUE}",
        attempts=[AttemptLine(1, STARTED, 401, f"HTTP 401: bad key {API_KEY_VALUE}")],
    )

    message = render_failure_email(replace(notice(failed), redact=REDACT))

    body = body_of(message)
    assert API_KEY_VALUE not in body and API_KEY_VALUE not in message.as_string()
    assert f'"order_notes": "use {MASK} to call back"' in body
    assert f"Subject:     ord {MASK}\n" in body
    assert f"error: HTTP 401: bad key {MASK}" in body


def test_the_redactor_does_not_show_in_the_notices_repr() -> None:
    assert API_KEY_VALUE not in repr(replace(notice(delivery(1)), redact=REDACT))


def raw_lines(message: EmailMessage) -> list[bytes]:
    return message.as_bytes(policy=policy.SMTP).split(b"\r\n")


def sent_and_read_back(message: EmailMessage) -> str:
    parsed = BytesParser(policy=policy.default).parsebytes(message.as_bytes(policy=policy.SMTP))
    assert isinstance(parsed, EmailMessage)
    return body_of(parsed).replace("\r\n", "\n")


@pytest.mark.parametrize(
    ("notes", "encoding"),
    [
        ("short lines\r\n.\r\nFrom me\n.", "quoted-printable"),
        ("x" * 70 + "From the client\r\n.\r\n" * 200, "quoted-printable"),
        ("." * 2000, "quoted-printable"),
        ("預約已確認" * 2000, "base64"),
    ],
)
def test_no_payload_breaks_the_message(notes: str, encoding: str) -> None:
    # Given a payload string made to end SMTP's data early, fake an mbox separator, or
    # run far past the line length limit
    message = render_failure_email(notice(with_payload(1, order_status_payload(order_notes=notes))))

    # Then the body is encoded so that no raw line does any of that
    assert message["Content-Transfer-Encoding"] == encoding
    lines = raw_lines(message)
    assert max(len(line) for line in lines) <= 78
    assert not [line for line in lines if line.startswith((b"From ", b"."))]
    # and the body reads back as it was written
    assert sent_and_read_back(message) == body_of(message)
    assert json.loads(payload_block(body_of(message)))["order_notes"] == notes
