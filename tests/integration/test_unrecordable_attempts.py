"""An attempt that was sent but cannot be recorded is never sent again and again.

The database refuses the attempt's row here through a trigger: a stand-in for any
recording failure that a retry would only repeat (it was a NUL in the response excerpt).
The real worker, its maintenance loop, a real receiver and a real SMTP server run.
"""

from __future__ import annotations

import asyncio

import pytest

from app.delivery.metrics import REGISTRY
from app.delivery.worker import GIVE_UP_REASON, MAX_REQUEUES
from tests.delivery import (
    OpenService,
    Service,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
)
from tests.receivers import Receiver, respond
from tests.smtp import SmtpTestServer

# Refuses every attempt row that matches a condition, with a data exception (SQLSTATE
# 22023: what psycopg raised for a NUL) unless told another code.
REFUSE = """
CREATE FUNCTION refuse_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'refused by the test' USING ERRCODE = '{errcode}';
END $$"""
REFUSE_WHEN = """
CREATE TRIGGER refuse_attempt BEFORE INSERT ON delivery_attempts
    FOR EACH ROW WHEN ({condition}) EXECUTE FUNCTION refuse_attempt()"""

OVERDUE = "UPDATE deliveries SET next_attempt_at = now() - interval '1 hour' WHERE id = %(id)s"


def record_failures(fallback: str) -> float:
    name = "webhooks_attempt_record_failures_total"
    return REGISTRY.get_sample_value(name, {"fallback": fallback}) or 0.0


async def refuse_attempts(service: Service, condition: str, errcode: str = "22023") -> None:
    await service.sql(REFUSE.format(errcode=errcode))
    await service.sql(REFUSE_WHEN.format(condition=condition))


@pytest.mark.parametrize(
    ("errcode", "error"),
    [
        ("22023", "InvalidParameterValue"),
        # An OperationalError that says nothing of the connection (a statement timeout)
        # must not send the attempt again through the job's retries either.
        ("57014", "QueryCanceled"),
    ],
)
async def test_a_response_that_cannot_be_recorded_is_recorded_without_it(
    open_service: OpenService, errcode: str, error: str
) -> None:
    # Given a database that cannot store this receiver's response excerpt
    service = await open_service()
    await refuse_attempts(service, "strpos(NEW.response_body, 'unstorable') > 0", errcode)
    counted = record_failures("without_response")
    with Receiver(default=respond(200, "unstorable")) as receiver:
        await service.subscribe(receiver.url_for("/hook"))

        # When an event is delivered to it
        delivery_id = await service.publish()

        # Then the attempt is recorded without the response, and the delivery succeeded
        delivery = await service.wait_for_status(delivery_id, "SUCCEEDED")
        await service.wait_for_idle(delivery_id)
        await asyncio.sleep(2.5)  # the job's retry would have sent it again by now
        requests = receiver.requests
    [attempt] = delivery["attempts"]
    assert (attempt["responseStatus"], attempt["succeeded"], attempt["error"]) == (200, True, None)
    assert attempt["responseBody"] == f"[the response could not be recorded ({error})]"
    # and it was sent once, and counted
    assert len(requests) == 1
    assert record_failures("without_response") == counted + 1


async def test_an_attempt_that_cannot_be_recorded_at_all_is_sent_a_bounded_number_of_times(
    open_service: OpenService,
) -> None:
    # Given a database that refuses every attempt with a response
    with SmtpTestServer() as smtp, Receiver(default=respond(200)) as receiver:
        service = await open_service(smtp_url=smtp.url)
        await refuse_attempts(service, "NEW.response_status IS NOT NULL")
        gave_up = record_failures("gave_up")
        await service.subscribe(receiver.url_for("/hook"))

        # When an event is published, and its attempt stays unrecorded each time the
        # maintenance loop finds it overdue and re-queues it
        delivery_id = await service.publish(subject="ord_stuck")
        for sent in range(1, MAX_REQUEUES + 2):
            await receiver.wait_for_async(sent, timeout=10)
            await service.wait_for_idle(delivery_id)
            assert (await service.delivery(delivery_id))["status"] == "PENDING"
            await service.sql(OVERDUE, id=delivery_id)

        # Then the maintenance loop gives up: the delivery FAILED, with an attempt that
        # says why, and the notification email went out
        delivery = await service.wait_for_status(delivery_id, "FAILED", timeout=10)
        [mail] = await smtp.wait_for_async(1, timeout=10)
        await asyncio.sleep(2.5)  # nothing more is sent
        requests = receiver.requests
    [attempt] = delivery["attempts"]
    reason = GIVE_UP_REASON.format(requeues=MAX_REQUEUES)
    assert (attempt["responseStatus"], attempt["succeeded"], attempt["error"]) == (
        None,
        False,
        reason,
    )
    assert delivery["nextAttemptAt"] is None
    body = mail.message.get_body(preferencelist=("plain",))
    assert body is not None
    assert "ord_stuck" in body.get_content()
    # and the receiver got the attempt once, plus once per re-queue, never more
    assert len(requests) == 1 + MAX_REQUEUES
    assert record_failures("gave_up") == gave_up + 1
