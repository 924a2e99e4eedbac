"""The failure email, end to end: a delivery fails for good, the real worker sends the
notice through a real SMTP server (aiosmtpd).

The delivery contract: after the last failure an email goes to the subscription's
notification address naming the webhook, the callback URL with API key values masked,
the event id and subject, and each attempt's time, status and error. No failed delivery
goes unreported (an SMTP outage only delays the email); failures of one subscription
within the grouping window share one email.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.delivery import (
    OpenService,
    Service,
    email_time,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
)
from tests.payloads import order_status_payload
from tests.receivers import Receiver, respond
from tests.smtp import ReceivedMail, SmtpTestServer

API_KEY_VALUE = "key-value-5f3a9c1e"
NOTIFY = "ops@company-a.example"


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


def text_of(mail: ReceivedMail) -> str:
    """The plain-text body, decoded, with newlines for SMTP's line ends."""
    return mail.text


def flat(text: str) -> str:
    """Whitespace collapsed, so wrapped sentences can be searched."""
    return " ".join(text.split())


async def test_after_the_last_failure_one_email_reports_every_attempt(
    open_service: OpenService, smtp: SmtpTestServer
) -> None:
    # Given 3 attempts at most, a receiver that always fails, and an API key parameter
    service = await open_service(smtp_url=smtp.url, retry_interval_seconds=0.5, max_attempts=3)
    with Receiver(default=respond(500, "database is down")) as receiver:
        subscription = await service.subscribe(
            receiver.url_for("/hook?tenant=a"),
            api_key_params=[{"name": "api_key", "value": API_KEY_VALUE}],
            notification_email=NOTIFY,
        )

        # When an event's delivery fails 3 times
        event = await service.publish_event(
            order_status_payload(order_status="assembly"), subject="ord_77"
        )
        [delivery_ref] = event["deliveries"]
        delivery = await service.wait_for_status(delivery_ref["id"], "FAILED")

        # Then exactly one email arrives, addressed to the notification address
        [mail] = await smtp.wait_for_async(1)
        await _no_email_job_left(service)
    assert smtp.messages == [mail]
    assert mail.rcpt_tos == (NOTIFY,)
    assert mail.message["To"] == NOTIFY
    body = text_of(mail)
    # naming the webhook, the masked callback URL, the event and its subject
    assert "Order Status (ORDER_STATUS)" in body
    assert f"Callback URL:    {subscription.callback_url}&api_key=••••\n" in body
    assert f"Event id:    {event['id']}" in body
    assert "Subject:     ord_77" in body
    assert delivery["webhookId"] in body
    # and each attempt's time, status and error
    for attempt in delivery["attempts"]:
        when = email_time(attempt["startedAt"])
        assert f"#{attempt['number']}  {when}  HTTP 500  error: HTTP 500\n" in body
    assert "Order Status" in mail.message["Subject"]
    # and no secret at all
    everything = mail.raw.decode("utf-8", errors="replace") + body + str(mail.message["Subject"])
    key = subscription.secret.removeprefix("whsec_")
    for secret in (API_KEY_VALUE, subscription.secret, key):
        assert secret not in everything


async def test_an_smtp_outage_delays_the_email_but_does_not_lose_it(
    open_service: OpenService,
) -> None:
    # Given an SMTP server that is down when the email is due
    smtp = SmtpTestServer()
    service = await open_service(smtp_url=smtp.url, max_attempts=1)
    try:
        with Receiver(default=respond(500)) as receiver:
            await service.subscribe(receiver.url_for("/hook"))
            event = await service.publish_event()
            [delivery_ref] = event["deliveries"]
            await service.wait_for_status(delivery_ref["id"], "FAILED")

            # When the first send has failed and the server comes back
            await service.wait_until(
                lambda: _send_failed(service),
                5.0,
                lambda: "the email was not tried while the server was down",
            )
            smtp.start()

            # Then the retried job (first backoff: 5 s) sends exactly one email
            [mail] = await smtp.wait_for_async(1, timeout=8.0)
            await _no_email_job_left(service)
            assert len(smtp.messages) == 1
    finally:
        smtp.stop()
    assert event["id"] in text_of(mail)
    [notice] = await service.sql("SELECT send_attempts, sent_at FROM failure_notices")
    assert notice["send_attempts"] == 2
    assert notice["sent_at"] is not None


async def test_failures_within_the_window_share_one_email(
    open_service: OpenService, smtp: SmtpTestServer
) -> None:
    # Given a 2 s grouping window and a receiver that always fails
    service = await open_service(smtp_url=smtp.url, email_window_seconds=2.0, max_attempts=1)
    with Receiver(default=respond(500)) as receiver:
        await service.subscribe(receiver.url_for("/hook"))

        # When three deliveries of the subscription fail within the window
        events = [await service.publish_event(subject=f"ord_{n}") for n in range(3)]
        for event in events:
            await service.wait_for_status(event["deliveries"][0]["id"], "FAILED")
        assert smtp.messages == []

        # Then one email lists all three
        [mail] = await smtp.wait_for_async(1, timeout=4.0)
        await _no_email_job_left(service)
    assert len(smtp.messages) == 1
    assert mail.message["Subject"].startswith("[PlanOmatic Webhooks] 3 deliveries of Order Status")
    body = text_of(mail)
    for number, event in enumerate(events):
        assert f"Event id:    {event['id']}" in body
        assert f"Subject:     ord_{number}" in body
    assert "Delivery 3 of 3" in body


async def _send_failed(service: Service) -> bool:
    rows = await service.sql(
        "SELECT 1 FROM failure_notices WHERE send_attempts >= 1 AND last_error IS NOT NULL"
    )
    return bool(rows)


async def _no_email_job_left(service: Service) -> None:
    """Wait until no email job is queued or running; a second email would need one."""

    async def idle() -> bool:
        rows = await service.sql(
            "SELECT 1 FROM procrastinate_jobs "
            "WHERE queue_name = 'notices' AND status IN ('todo', 'doing')"
        )
        return not rows

    await service.wait_until(idle, 5.0, lambda: "an email job is still queued")


async def test_a_410_inside_the_window_is_reported_at_once_with_its_reason(
    open_service: OpenService, smtp: SmtpTestServer
) -> None:
    # Given a 2 s grouping window already waiting to report a failed delivery
    service = await open_service(smtp_url=smtp.url, email_window_seconds=2.0, max_attempts=1)
    with Receiver() as receiver:
        receiver.script("/hook", [respond(500), respond(410)])
        await service.subscribe(receiver.url_for("/hook"))
        failed = await service.publish_event(subject="ord_1")
        await service.wait_for_status(failed["deliveries"][0]["id"], "FAILED")

        # When the endpoint answers the next delivery with 410 Gone
        gone = await service.publish_event(subject="ord_2")
        await service.wait_for_status(gone["deliveries"][0]["id"], "FAILED")

        # Then the email goes out before the window ends, saying the subscription was
        # deactivated and listing both failures; the window's own job has nothing left
        [mail] = await smtp.wait_for_async(1, timeout=1.5)
        await _no_email_job_left(service)
    assert len(smtp.messages) == 1
    body = text_of(mail)
    assert "the subscription was deactivated" in flat(body)
    assert failed["id"] in body and gone["id"] in body
