"""The statement that records an attempt finishes its Procrastinate job (migration 0022).

The worker then does not finish the job again: one statement and one commit fewer per
attempt. What Procrastinate sees of the job must stay what its own finish would leave:
deleted, as the worker deletes jobs that succeeded, or succeeded with its events when
kept; and the next attempt of a failed one is queued as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from procrastinate import manager

from tests.delivery import (
    OpenService,
    Service,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
)
from tests.receivers import Receiver, respond

DEFER = (
    "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW('deliveries', 'deliver_webhook', 0,"
    " %(lock)s, NULL, '{}'::jsonb, NULL)::procrastinate_job_to_defer_v1]) AS ids"
)
FETCH = "SELECT id FROM procrastinate_fetch_job_v2(ARRAY['deliveries'], %(worker)s)"
JOB = "SELECT status, attempts, abort_requested FROM procrastinate_jobs WHERE id = %(id)s"
EVENTS = "SELECT type::text FROM procrastinate_events WHERE job_id = %(id)s ORDER BY id"


@pytest.fixture
def finishes() -> Iterator[list[int]]:
    """The job ids Procrastinate's own finish (or retry) is called with, in the worker.

    A spy: it counts, then calls Procrastinate's method as it is."""
    called: list[int] = []
    finish, retry = manager.JobManager.finish_job, manager.JobManager.retry_job

    async def counted_finish(self: manager.JobManager, job: Any, *args: Any, **kw: Any) -> None:
        called.append(job.id)
        await finish(self, job, *args, **kw)

    async def counted_retry(self: manager.JobManager, job: Any, *args: Any, **kw: Any) -> None:
        called.append(job.id)
        await retry(self, job, *args, **kw)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(manager.JobManager, "finish_job", counted_finish)
        patch.setattr(manager.JobManager, "retry_job", counted_retry)
        yield called


async def _queued(service: Service, receiver: Receiver) -> tuple[str, int]:
    """A delivery to ``receiver`` queued while no worker runs: its id and its job's."""
    await service.subscribe(receiver.url_for("/hook"))
    delivery_id = await service.publish()
    [row] = await service.sql(
        "SELECT id FROM procrastinate_jobs WHERE lock = %(lock)s AND status = 'todo'",
        lock=delivery_id,
    )
    return delivery_id, row["id"]


async def test_a_recorded_first_attempt_leaves_its_job_finished_without_a_finish(
    open_service: OpenService, finishes: list[int]
) -> None:
    # Given a delivery queued while no worker runs, and a receiver answering 200
    service = await open_service(worker=False)
    with Receiver(default=respond(200)) as receiver:
        delivery_id, job_id = await _queued(service, receiver)

        # When the worker delivers it
        service.start_worker()
        await service.wait_for_status(delivery_id, "SUCCEEDED")
        await service.wait_for_idle(delivery_id)

    # Then its job is gone, as the worker deletes jobs that succeeded, yet the worker
    # never called Procrastinate's finish for it: the attempt's record finished it
    assert await service.sql(JOB, id=job_id) == []
    assert job_id not in finishes
    assert len(receiver.requests) == 1


async def test_a_failed_first_attempt_finishes_its_job_and_queues_the_next(
    open_service: OpenService, finishes: list[int]
) -> None:
    # Given a delivery queued while no worker runs, and a receiver answering 500
    service = await open_service(worker=False, retry_interval_seconds=60.0)
    with Receiver(default=respond(500)) as receiver:
        delivery_id, job_id = await _queued(service, receiver)

        # When the worker tries it
        service.start_worker()
        await service.wait_for_status(delivery_id, "RETRYING")
        await service.wait_until(lambda: _job_closed(service, job_id))

    # Then the attempt's job is closed in the transaction that queued the next attempt,
    # which waits its interval, and the worker did not finish the first one itself
    jobs = await service.sql(
        "SELECT id, status, args ->> 'attempt' AS attempt,"
        " scheduled_at > now() + interval '50 seconds' AS waits"
        " FROM procrastinate_jobs WHERE lock = %(lock)s",
        lock=delivery_id,
    )
    assert [(job["status"], job["attempt"], job["waits"]) for job in jobs] == [("todo", "2", True)]
    assert job_id not in finishes


async def _job_closed(service: Service, job_id: int) -> bool:
    return await service.sql(JOB, id=job_id) == []


@pytest.mark.parametrize("delete_job", [False, True])
async def test_the_finish_leaves_a_job_as_procrastinates_own_finish_does(
    open_service: OpenService, delete_job: bool
) -> None:
    # Given two jobs running in a worker
    service = await open_service(worker=False)
    [worker] = await service.sql(
        "INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id AS id"
    )
    ids = []
    for lock in ("a", "b"):
        await service.sql(DEFER, lock=lock)
        [fetched] = await service.sql(FETCH, worker=worker["id"])
        ids.append(fetched["id"])
    ours, theirs = ids

    # When one is finished by ours and the other by Procrastinate's, as succeeded
    [finished] = await service.sql(
        "SELECT webhooks_finish_job_v1(%(id)s, %(delete)s) AS closed", id=ours, delete=delete_job
    )
    await service.sql(
        "SELECT procrastinate_finish_job_v1(%(id)s, 'succeeded', %(delete)s)",
        id=theirs,
        delete=delete_job,
    )

    # Then both are left alike: the row and the events Procrastinate's triggers wrote
    assert finished["closed"] is True
    assert await service.sql(JOB, id=ours) == await service.sql(JOB, id=theirs)
    assert await service.sql(EVENTS, id=ours) == await service.sql(EVENTS, id=theirs)
    if not delete_job:
        assert await service.sql(JOB, id=ours) == [
            {"status": "succeeded", "attempts": 1, "abort_requested": False}
        ]
    # and a job no longer open is no error (Procrastinate's raises): nothing changes
    [again] = await service.sql(
        "SELECT webhooks_finish_job_v1(%(id)s, %(delete)s) AS closed", id=ours, delete=delete_job
    )
    assert again["closed"] is False
