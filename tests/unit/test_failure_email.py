from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage

import pytest

from app.delivery.failure_email import (
    AttemptLine,
    FailedDelivery,
    FailureNotice,
    notice_id,
    render_failure_email,
)

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
