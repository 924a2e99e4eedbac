"""Jobs that run twice, jobs whose worker died, and deliveries whose job was lost.

Jobs are idempotent: replaying an attempt records it once and never sends after the
attempt was recorded; a job of an earlier cycle does nothing. The worker's recovery
round (``app.delivery.worker.recover``, run by its maintenance loop) re-queues jobs left in
``doing`` by a dead worker and re-creates the job of an overdue delivery, or of a failure
email, that has none.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from procrastinate.jobs import Job

from app.delivery.attempts import make_attempt
from app.delivery.transport import Transport
from app.delivery.worker import build_transport, recover
from app.domain.redelivery import redeliver
from tests.delivery import (
    OpenService,
    Service,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
)
from tests.receivers import Receiver, respond
from tests.service import company_viewer


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    with Receiver() as running:
        yield running


async def transport_for(service: Service) -> Transport:
    return build_transport(service.settings, service.services, concurrency=5)


async def attempt_rows(service: Service, delivery_id: str) -> list[tuple[int, int]]:
    rows = await service.sql(
        "SELECT cycle, number FROM delivery_attempts WHERE delivery_id = %(id)s "
        "ORDER BY cycle, number",
        id=delivery_id,
    )
    return [(row["cycle"], row["number"]) for row in rows]


async def queued_attempts(service: Service, delivery_id: str) -> list[int]:
    """The attempt numbers of the delivery's queued or running jobs, oldest first."""
    rows = await service.sql(
        "SELECT (args ->> 'attempt')::int AS attempt FROM procrastinate_jobs "
        "WHERE lock = %(lock)s AND status IN ('todo', 'doing') ORDER BY id",
        lock=delivery_id,
    )
    return [row["attempt"] for row in rows]


async def drop_first_job(service: Service, delivery_id: str) -> None:
    """Remove the queued job of attempt 1, which these tests run by hand instead."""
    await service.sql(
        "DELETE FROM procrastinate_jobs WHERE lock = %(lock)s AND status = 'todo' "
        "AND (args ->> 'attempt')::int = 1",
        lock=delivery_id,
    )


@pytest.mark.parametrize(
    ("status", "results"),
    [(200, ("succeeded", "skipped")), (500, ("retrying", "already-recorded"))],
    ids=["after-success", "after-failure"],
)
async def test_a_replayed_attempt_job_neither_sends_nor_records_again(
    open_service: OpenService, receiver: Receiver, status: int, results: tuple[str, str]
) -> None:
    # Given a published event, a receiver answering ``status``, and no worker
    service = await open_service(worker=False)
    receiver.script("/hook", respond(status))
    await service.subscribe(receiver.url_for("/hook"))
    delivery_id = await service.publish()
    await drop_first_job(service, delivery_id)

    # When its first attempt job runs twice in a row
    async with await transport_for(service) as transport:
        first = await make_attempt(service.services, transport, delivery_id, 1, 1)
        again = await make_attempt(service.services, transport, delivery_id, 1, 1)

    # Then the second run sends nothing, records nothing and queues nothing
    assert (first, again) == results
    assert len(receiver.requests) == 1
    assert await attempt_rows(service, delivery_id) == [(1, 1)]
    assert await queued_attempts(service, delivery_id) == ([] if status == 200 else [2])


async def test_two_runs_of_one_attempt_at_once_record_it_once_and_schedule_one_retry(
    open_service: OpenService, receiver: Receiver
) -> None:
    # Given a receiver that takes a moment to fail, and no worker
    service = await open_service(worker=False)
    receiver.script("/hook", respond(500, delay=0.3))
    await service.subscribe(receiver.url_for("/hook"))
    delivery_id = await service.publish()
    await drop_first_job(service, delivery_id)

    # When the same attempt job runs twice concurrently (both load before either records)
    async with await transport_for(service) as transport:
        results = await asyncio.gather(
            make_attempt(service.services, transport, delivery_id, 1, 1),
            make_attempt(service.services, transport, delivery_id, 1, 1),
        )

    # Then it may have been sent once more, but it is recorded once with one retry queued
    assert sorted(results) == ["already-recorded", "retrying"]
    assert len(receiver.requests) <= 2
    assert await attempt_rows(service, delivery_id) == [(1, 1)]
    assert await queued_attempts(service, delivery_id) == [2]
    assert (await service.delivery(delivery_id))["attemptCount"] == 1


async def test_a_job_of_an_earlier_cycle_does_nothing(
    open_service: OpenService, receiver: Receiver
) -> None:
    # Given a delivery that failed in cycle 1 and was redelivered (cycle 2), no worker
    service = await open_service(worker=False, max_attempts=1)
    receiver.script("/hook", [respond(500), respond(200)])
    await service.subscribe(receiver.url_for("/hook"))
    delivery_id = await service.publish()
    async with await transport_for(service) as transport:
        assert await make_attempt(service.services, transport, delivery_id, 1, 1) == "failed"
        services = service.services
        await redeliver(services.db, services.queue, company_viewer(service.tenants.a), delivery_id)

        # When jobs of cycle 1 run now
        late = [
            await make_attempt(service.services, transport, delivery_id, 1, number)
            for number in (1, 2)
        ]

        # Then they send and record nothing, while cycle 2's first attempt goes ahead
        assert late == ["skipped", "skipped"]
        assert len(receiver.requests) == 1
        assert await make_attempt(service.services, transport, delivery_id, 2, 1) == "succeeded"
    assert await attempt_rows(service, delivery_id) == [(1, 1), (2, 1)]


@pytest.mark.parametrize("by", ["recover", "maintenance-loop"])
async def test_a_job_left_running_by_a_dead_worker_is_run_again(
    open_service: OpenService, receiver: Receiver, by: str
) -> None:
    # Given attempt 1 failed and attempt 2's job was taken by a worker that then died
    service = await open_service(worker=False, retry_interval_seconds=0.3)
    receiver.script("/hook", [respond(500), respond(200)])
    await service.subscribe(receiver.url_for("/hook"))
    delivery_id = await service.publish()
    await drop_first_job(service, delivery_id)
    async with await transport_for(service) as transport:
        assert await make_attempt(service.services, transport, delivery_id, 1, 1) == "retrying"
    job = await take_job_as_dead_worker(service)
    assert job.task_kwargs == {"delivery_id": delivery_id, "cycle": 1, "attempt": 2}

    # When the recovery round runs (directly, or in the running worker)
    if by == "recover":
        assert (await recover(service.services))["stalled"] == 1
    service.start_worker()

    # Then attempt 2 is made, once, with its own number
    delivery = await service.wait_for_status(delivery_id, "SUCCEEDED")
    assert [attempt["number"] for attempt in delivery["attempts"]] == [1, 2]
    assert [request.header("webhook-attempt") for request in receiver.requests] == ["1", "2"]


async def test_an_overdue_retrying_delivery_without_a_job_gets_one(
    open_service: OpenService, receiver: Receiver
) -> None:
    # Given a delivery waiting for attempt 2 whose job was lost, overdue by a minute
    service = await open_service(worker=False)
    receiver.script("/hook", [respond(500), respond(200)])
    await service.subscribe(receiver.url_for("/hook"))
    delivery_id = await service.publish()
    async with await transport_for(service) as transport:
        assert await make_attempt(service.services, transport, delivery_id, 1, 1) == "retrying"
    await service.sql("DELETE FROM procrastinate_jobs WHERE lock = %(id)s", id=delivery_id)
    await service.sql(
        "UPDATE deliveries SET next_attempt_at = now() - interval '1 minute' WHERE id = %(id)s",
        id=delivery_id,
    )

    # When the recovery round runs (twice: the second finds the job already there)
    assert (await recover(service.services))["orphans"] == 1
    assert (await recover(service.services))["orphans"] == 0
    assert await queued_attempts(service, delivery_id) == [2]
    service.start_worker()

    # Then attempt 2 is made and succeeds
    delivery = await service.wait_for_status(delivery_id, "SUCCEEDED")
    assert [attempt["number"] for attempt in delivery["attempts"]] == [1, 2]
    assert [request.header("webhook-attempt") for request in receiver.requests] == ["1", "2"]


async def test_a_failure_email_whose_job_was_lost_gets_one(
    open_service: OpenService, receiver: Receiver
) -> None:
    # Given a failed delivery reported a day ago whose email job was lost
    service = await open_service(worker=False, max_attempts=1)
    receiver.script("/hook", respond(500))
    subscription = await service.subscribe(receiver.url_for("/hook"))
    delivery_id = await service.publish()
    await drop_first_job(service, delivery_id)
    async with await transport_for(service) as transport:
        assert await make_attempt(service.services, transport, delivery_id, 1, 1) == "failed"
    await service.sql("DELETE FROM procrastinate_jobs WHERE task_name = 'send_failure_notice'")
    await service.sql(
        "UPDATE failed_delivery_reports SET created_at = now() - interval '1 day'"
        " WHERE delivery_id = %(id)s",
        id=delivery_id,
    )

    # When the recovery round runs (twice: the second finds the job already there)
    assert (await recover(service.services))["notices"] == 1
    assert (await recover(service.services))["notices"] == 0

    # Then one email job of the subscription waits, due now
    jobs = await service.sql(
        "SELECT args, queueing_lock, scheduled_at <= now() AS due FROM procrastinate_jobs"
        " WHERE task_name = 'send_failure_notice' AND status = 'todo'"
    )
    assert jobs == [
        {
            "args": {"subscription_id": subscription.id, "reason": None},
            "queueing_lock": f"notice:{subscription.id}",
            "due": True,
        }
    ]


async def take_job_as_dead_worker(service: Service) -> Job:
    """Fetch the next due delivery job as a registered worker, then make that worker's
    heartbeat an hour old: what a SIGKILLed worker leaves behind."""
    manager = service.services.queue.job_manager
    worker_id = await manager.register_worker()
    taken: list[Job] = []

    async def fetched() -> bool:
        job = await manager.fetch_job(queues=["deliveries"], worker_id=worker_id)
        if job is not None:
            taken.append(job)
        return job is not None

    await service.wait_until(fetched, 3.0, lambda: "no delivery job came due")
    await service.sql(
        "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour' "
        "WHERE id = %(id)s",
        id=worker_id,
    )
    return taken[0]
