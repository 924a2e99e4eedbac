"""The retry schedule, end to end with the real worker and real receivers.

The delivery contract: attempt 1 goes out as soon as the event is published; attempt
n+1 goes out one retry interval after attempt n finished failing; at most
``max_attempts`` attempts, then the delivery is FAILED and nothing more is sent. Every
attempt carries the same webhook-id and body, with its own timestamp and signature.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import timedelta

from tests.delivery import (
    OpenService,
    Service,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
    parse_time,
    verify,
)
from tests.receivers import Receiver, respond


async def test_a_receiver_failing_twice_then_answering_gets_exactly_three_attempts(
    open_service: OpenService,
) -> None:
    # Given a 1 s retry interval and a receiver that fails twice, then answers 200
    service = await open_service(retry_interval_seconds=1.0)
    with Receiver() as receiver:
        receiver.script("/hook", [respond(500), respond(503), respond(200)])
        subscription = await service.subscribe(receiver.url_for("/hook"))

        # When an event is published
        delivery_id = await service.publish()

        # Then the third attempt succeeds and there is no fourth
        delivery = await service.wait_for_status(delivery_id, "SUCCEEDED", timeout=6)
        await service.wait_for_idle(delivery_id)
        requests = receiver.requests

    assert [(a["cycle"], a["number"], a["responseStatus"]) for a in delivery["attempts"]] == [
        (1, 1, 500),
        (1, 2, 503),
        (1, 3, 200),
    ]
    assert delivery["attemptCount"] == 3
    assert [request.header("webhook-attempt") for request in requests] == ["1", "2", "3"]
    # one retry interval (at least) between one attempt and the next
    arrivals = [request.received_at for request in requests]
    assert all(later - earlier >= 1.0 for earlier, later in itertools.pairwise(arrivals))
    # the same message every time, signed afresh
    assert {request.header("webhook-id") for request in requests} == {delivery["webhookId"]}
    assert len({request.body for request in requests}) == 1
    assert len({request.header("webhook-timestamp") for request in requests}) == 3
    assert len({request.header("webhook-signature") for request in requests}) == 3
    for request in requests:
        verify(request, subscription.secret)


async def test_an_always_failing_receiver_gets_max_attempts_and_then_nothing(
    open_service: OpenService,
) -> None:
    # Given 3 attempts at most, 0.5 s apart, and a receiver that always fails
    service = await open_service(retry_interval_seconds=0.5, max_attempts=3)
    with Receiver(default=respond(500, "still broken")) as receiver:
        await service.subscribe(receiver.url_for("/hook"))

        # When an event is published
        delivery_id = await service.publish()

        # Then it fails for good after exactly 3 attempts
        delivery = await service.wait_for_status(delivery_id, "FAILED")
        assert [attempt["number"] for attempt in delivery["attempts"]] == [1, 2, 3]
        assert (delivery["attemptCount"], delivery["nextAttemptAt"]) == (3, None)
        assert delivery["completedAt"] is not None

        # and nothing more arrives, two intervals later or ever (no job is left)
        await service.wait_for_idle(delivery_id)
        await asyncio.sleep(1.0)
        assert len(receiver.requests) == 3
    assert (await service.delivery(delivery_id))["status"] == "FAILED"


async def test_the_next_attempt_is_scheduled_one_interval_after_the_failure_finished(
    open_service: OpenService,
) -> None:
    # Given the default interval of 360 s and a receiver that takes 1 s to fail
    service = await open_service(retry_interval_seconds=360.0, request_timeout_seconds=5.0)
    with Receiver(default=respond(500, delay=1.0)) as receiver:
        await service.subscribe(receiver.url_for("/hook"))

        # When the first attempt fails
        delivery_id = await service.publish()
        delivery = await service.wait_for_status(delivery_id, "RETRYING")

    # Then attempt 2 is due 360 s after attempt 1 finished (not after it started) ...
    [attempt] = delivery["attempts"]
    started = parse_time(attempt["startedAt"])
    finished = started + timedelta(milliseconds=attempt["durationMs"])
    assert attempt["durationMs"] >= 1000
    next_attempt = parse_time(delivery["nextAttemptAt"])
    assert abs(next_attempt - (finished + timedelta(seconds=360))) < timedelta(seconds=1)
    assert next_attempt >= finished + timedelta(seconds=360) - timedelta(milliseconds=5)
    # ... both as the API tells it and as the job queue will run it
    [job] = await service.sql(
        "SELECT scheduled_at, status FROM procrastinate_jobs "
        "WHERE lock = %(lock)s AND (args ->> 'attempt')::int = 2",
        lock=delivery_id,
    )
    assert (job["scheduled_at"], job["status"]) == (next_attempt, "todo")


async def test_the_first_attempt_goes_out_at_once_not_at_the_next_poll(
    open_service: OpenService,
) -> None:
    # Given a worker that polls for due jobs only every 5 s, listening for new ones
    service = await open_service(poll_interval_seconds=5.0)
    await _listening(service)
    with Receiver() as receiver:
        await service.subscribe(receiver.url_for("/hook"))

        # When an event is published
        published = time.monotonic()
        await service.publish()

        # Then attempt 1 arrives within a fraction of a second
        [request] = await receiver.wait_for_async(1, timeout=4.0)
    assert request.received_at - published < 0.5


async def _listening(service: Service) -> None:
    """Wait until the worker's LISTEN connection is up (a new job then wakes it)."""

    async def listening() -> bool:
        rows = await service.sql(
            "SELECT 1 FROM pg_stat_activity "
            "WHERE datname = current_database() AND query ILIKE 'LISTEN %%'"
        )
        return bool(rows)

    await service.wait_until(listening, 5.0, lambda: "the worker is not listening")
