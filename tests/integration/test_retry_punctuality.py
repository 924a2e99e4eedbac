"""A retry starts when it is due, not at the worker's next poll.

The worker's fetch that finds nothing also tells when the next scheduled job comes due
(``fetch_jobs`` in sql/queries/queue.sql), and the worker waits at most that long
(app/store/queue.py, ``PunctualWorker``). Bounds here are a fraction of the poll
interval, so they test that mechanism rather than the box's speed.
"""

from __future__ import annotations

import datetime
import itertools
import math
from datetime import timedelta

from procrastinate.jobs import Job

from app.store.queue import DELIVERY_QUEUE, NOTICE_QUEUE, RejoiningJobManager
from tests.delivery import (
    OpenService,
    Service,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
    parse_time,
)
from tests.receivers import Receiver, respond

POLL_SECONDS = 2.0
RETRY_SECONDS = 1.0


async def test_a_retry_starts_when_due_not_at_the_next_poll(open_service: OpenService) -> None:
    # Given a worker polling every 2 s, retries 1 s apart, a receiver failing twice
    service = await open_service(
        poll_interval_seconds=POLL_SECONDS, retry_interval_seconds=RETRY_SECONDS
    )
    with Receiver() as receiver:
        receiver.script("/hook", [respond(500), respond(500), respond(200)])
        await service.subscribe(receiver.url_for("/hook"))

        # When an event is published
        delivery_id = await service.publish()

        # Then each retry started within a quarter of the poll interval of being due
        # (polling alone: up to a whole interval late; the notification sent when the
        # retry is queued wakes the worker 1 s early, and it would then sleep 2 s)
        delivery = await service.wait_for_status(delivery_id, "SUCCEEDED", timeout=10)
    attempts = delivery["attempts"]
    assert [attempt["number"] for attempt in attempts] == [1, 2, 3]
    for earlier, later in itertools.pairwise(attempts):
        due = (
            parse_time(earlier["startedAt"])
            + timedelta(milliseconds=earlier["durationMs"])
            + timedelta(seconds=RETRY_SECONDS)
        )
        lateness = (parse_time(later["startedAt"]) - due).total_seconds()
        assert -0.05 < lateness < POLL_SECONDS / 4, (later["number"], lateness)


async def test_an_empty_fetch_tells_when_the_next_scheduled_job_is_due(
    open_service: OpenService,
) -> None:
    # Given a registered worker and no worker running
    service = await open_service(worker=False)
    manager = service.services.queue.job_manager
    assert isinstance(manager, RejoiningJobManager)
    worker_id = await manager.register_worker()
    queues = [DELIVERY_QUEUE, NOTICE_QUEUE]

    # When nothing is queued, then none is due ever
    assert await manager.fetch_job(queues, worker_id) is None
    assert manager.seconds_until_due(worker_id) == math.inf

    # When jobs are scheduled 60 s and 30 s ahead, then the next due is the 30 s one's
    now = datetime.datetime.now(datetime.UTC)
    await _schedule(service, DELIVERY_QUEUE, now + timedelta(seconds=60))
    await _schedule(service, NOTICE_QUEUE, now + timedelta(seconds=30))
    assert await manager.fetch_job(queues, worker_id) is None
    assert 28.0 < manager.seconds_until_due(worker_id) <= 30.0

    # When a job due now is taken, then the fetch returns it and keeps the last figure
    await _schedule(service, DELIVERY_QUEUE, None)
    job = await manager.fetch_job(queues, worker_id)
    assert job is not None and job.queue == DELIVERY_QUEUE and job.scheduled_at is None
    assert 28.0 < manager.seconds_until_due(worker_id) <= 30.0

    # When a job already due cannot be taken (its lock is held by the running one), then
    # it does not count: the worker would wake for it again and again
    await _schedule(service, DELIVERY_QUEUE, now - timedelta(seconds=1), lock=job.lock)
    assert await manager.fetch_job(queues, worker_id) is None
    assert 28.0 < manager.seconds_until_due(worker_id) <= 30.0


async def _schedule(
    service: Service, queue: str, at: datetime.datetime | None, lock: str | None = None
) -> None:
    """Queue a job (of no task: no worker runs here) on ``queue``, due at ``at``."""
    manager = service.services.queue.job_manager
    await manager.defer_job_async(
        Job(
            id=None,
            queue=queue,
            lock=lock or f"punctuality-{queue}-{at}",
            queueing_lock=None,
            task_name="punctuality_probe",
            task_kwargs={},
            scheduled_at=at,
        )
    )
