"""The worker takes due jobs in batches: as many as it has free slots, in one statement.

``fetch_jobs`` (sql/queries/queue.sql, migration 0025) keeps every rule of Procrastinate's
one-job fetch repeated: priority then age, one open job per lock, the lowest first.
``PunctualWorker`` (app/store/queue.py) asks for its free slots, starts every job it
got, and never runs more than its concurrency.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterable
from typing import TypeVar

import procrastinate
from procrastinate.jobs import Job

from app.store.queue import PunctualWorker, RejoiningJobManager
from tests.delivery import (
    OpenService,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
)

QUEUE = "batch-probe"


async def registered_worker(open_service: OpenService) -> tuple[RejoiningJobManager, int]:
    """The service's job manager, with no worker running, and a worker registered."""
    service = await open_service(worker=False)
    manager = service.services.queue.job_manager
    assert isinstance(manager, RejoiningJobManager)
    return manager, await manager.register_worker()


async def test_a_batch_is_taken_in_priority_then_age_order_one_job_per_lock(
    open_service: OpenService,
) -> None:
    # Given a registered worker, and queued: three jobs sharing a lock, three with locks
    # of their own, one of a higher priority queued last
    manager, worker_id = await registered_worker(open_service)
    shared = [await _defer(manager, "shared", f"shared-{n}") for n in range(3)]
    own = [await _defer(manager, f"own-{n}", f"own-{n}") for n in range(3)]
    urgent = await _defer(manager, "urgent", "urgent", priority=5)

    # When the worker asks for up to ten
    batch = await manager.fetch_jobs([QUEUE], worker_id, 10)

    # Then it gets the urgent one, then the rest by age, and only the first of the lock
    assert [job.id for job in batch] == [urgent, shared[0], *own]
    assert {job.status for job in batch} == {"doing"}
    # and the lock's next job waits for that one to end
    assert await manager.fetch_jobs([QUEUE], worker_id, 10) == []
    await manager.finish_job(batch[1], procrastinate.jobs.Status.SUCCEEDED, delete_job=True)
    assert [job.id for job in await manager.fetch_jobs([QUEUE], worker_id, 10)] == [shared[1]]


async def test_a_batch_is_no_larger_than_asked(open_service: OpenService) -> None:
    manager, worker_id = await registered_worker(open_service)
    queued = [await _defer(manager, f"job-{n}", f"job-{n}") for n in range(5)]

    assert [job.id for job in await manager.fetch_jobs([QUEUE], worker_id, 2)] == queued[:2]
    assert [job.id for job in await manager.fetch_jobs([QUEUE], worker_id, 0)] == []
    assert [job.id for job in await manager.fetch_jobs([QUEUE], worker_id, 9)] == queued[2:]


async def test_due_scheduled_jobs_and_jobs_queued_now_are_merged_as_successive_fetches_take_them(
    open_service: OpenService,
) -> None:
    # Given: a job due a second ago, a job queued for now, a job due two seconds ago
    manager, worker_id = await registered_worker(open_service)
    now = datetime.datetime.now(datetime.UTC)
    later_due = await _defer(manager, "a", "a", at=now - datetime.timedelta(seconds=1))
    queued_now = await _defer(manager, "b", "b")
    first_due = await _defer(manager, "c", "c", at=now - datetime.timedelta(seconds=2))

    # When the worker asks for two, then it gets what two one-job fetches take: each the
    # smaller id of the next job queued for now and the next scheduled one to come due
    assert {job.id for job in await manager.fetch_jobs([QUEUE], worker_id, 2)} == {
        queued_now,
        first_due,
    }
    assert [job.id for job in await manager.fetch_jobs([QUEUE], worker_id, 5)] == [later_due]

    # Given then: a job that came due, and two queued for now after it
    due = await _defer(manager, "d", "d", at=now - datetime.timedelta(seconds=1))
    after = [await _defer(manager, lock, lock) for lock in ("e", "f")]
    # When the worker asks for two, then it gets the due one and the first queued after it
    assert {job.id for job in await manager.fetch_jobs([QUEUE], worker_id, 2)} == {due, after[0]}


Manager = TypeVar("Manager", bound=RejoiningJobManager)


def app_with(manager: type[Manager], database_url: str) -> tuple[procrastinate.App, Manager]:
    """A Procrastinate app on the test database, with a job manager of that class."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=database_url))
    job_manager = manager(app.connector)
    app.job_manager = job_manager
    return app, job_manager


class BatchRecorder(RejoiningJobManager):
    """The worker's job manager, noting the size of every batch it asked for and got."""

    def __init__(self, connector: procrastinate.BaseConnector) -> None:
        super().__init__(connector)
        self.batches: list[tuple[int, int]] = []

    async def fetch_jobs(
        self, queues: Iterable[str] | None, worker_id: int, max_jobs: int
    ) -> list[Job]:
        taken = await super().fetch_jobs(queues, worker_id, max_jobs)
        self.batches.append((max_jobs, len(taken)))
        return taken


async def test_the_worker_fills_its_free_slots_with_one_fetch_and_never_exceeds_them(
    database_url: str,
) -> None:
    # Given twelve jobs queued, and a worker with four slots whose task holds its slot
    # until the test lets it go
    app, recorder = app_with(BatchRecorder, database_url)
    running: list[int] = []
    most_at_once = 0
    ran: list[int] = []
    release = asyncio.Event()

    @app.task(name="batch_probe", queue=QUEUE)
    async def probe(n: int) -> None:
        nonlocal most_at_once
        running.append(n)
        most_at_once = max(most_at_once, len(running))
        await release.wait()
        running.remove(n)
        ran.append(n)

    async with app.open_async():
        for n in range(12):
            await probe.configure(lock=f"probe-{n}").defer_async(n=n)
        worker = PunctualWorker(
            app=app,  # type: ignore[no-untyped-call]
            queues=[QUEUE],
            concurrency=4,
            wait=False,
            fetch_job_polling_interval=0.1,
            install_signal_handlers=False,
        )
        run = asyncio.create_task(worker.run())  # type: ignore[no-untyped-call]

        # When the worker starts: its first fetch asks for its four slots and gets four
        while len(running) < 4:
            await asyncio.sleep(0.01)
        assert recorder.batches[0] == (4, 4)
        await asyncio.sleep(0.2)
        assert len(running) == 4  # no fifth job while all four run

        # When the jobs are let go, then every job ran once, never more than four at once
        release.set()
        await asyncio.wait_for(run, timeout=30)

    assert sorted(ran) == list(range(12))
    assert most_at_once == 4
    # and the twelve were taken in fewer fetches than jobs, none larger than asked
    taken = [got for _, got in recorder.batches]
    assert sum(taken) == 12
    assert len([got for got in taken if got]) < 12
    assert all(got <= asked <= 4 for asked, got in recorder.batches)


class QueuedDuringTheFetch(RejoiningJobManager):
    """The worker's job manager, queueing one job while its first empty fetch runs: after
    the fetch's statement has looked (past its snapshot), before it returns, once the
    worker listens, and waiting for the job's notification to reach the worker."""

    def __init__(self, connector: procrastinate.BaseConnector) -> None:
        super().__init__(connector)
        self.worker: PunctualWorker | None = None
        self.queued: list[int] = []

    async def fetch_jobs(
        self, queues: Iterable[str] | None, worker_id: int, max_jobs: int
    ) -> list[Job]:
        taken = await super().fetch_jobs(queues, worker_id, max_jobs)
        if taken or self.queued or self.worker is None:
            return taken
        async with asyncio.timeout(10):
            while not await self._listening():
                await asyncio.sleep(0.02)
            self.queued.append(await _defer(self, "late", "late_probe"))
            await self.worker._new_job_event.wait()
        return taken

    async def _listening(self) -> bool:
        """Whether a session LISTENs on this database: the worker's listener is up."""
        row = await self.connector.execute_query_one_async(
            "SELECT count(*) AS n FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN %%'"
        )
        return bool(row["n"])


async def test_a_job_queued_while_the_worker_fetches_runs_without_waiting_for_a_poll(
    database_url: str,
) -> None:
    # Given a worker that polls once a minute, and a job queued while its first fetch
    # (which finds nothing) runs
    app, manager = app_with(QueuedDuringTheFetch, database_url)
    ran: list[int] = []

    @app.task(name="late_probe", queue=QUEUE, pass_context=True)
    async def probe(context: procrastinate.JobContext) -> None:
        assert context.job.id is not None
        ran.append(context.job.id)

    async with app.open_async():
        worker = PunctualWorker(
            app=app,  # type: ignore[no-untyped-call]
            queues=[QUEUE],
            concurrency=2,
            fetch_job_polling_interval=60,
            install_signal_handlers=False,
        )
        manager.worker = worker
        run = asyncio.create_task(worker.run())  # type: ignore[no-untyped-call]
        try:
            # Then the worker takes it at once: the job's notification, come while the
            # fetch ran, is not cleared with the fetch's own
            async with asyncio.timeout(5):
                while not manager.queued or ran != manager.queued:
                    await asyncio.sleep(0.02)
        finally:
            worker.stop()  # type: ignore[no-untyped-call]
            await asyncio.wait_for(run, timeout=10)


async def _defer(
    manager: RejoiningJobManager,
    lock: str,
    name: str,
    priority: int = 0,
    at: datetime.datetime | None = None,
) -> int:
    """Queue a job (of no task: no worker runs it here), due ``at`` (None: queued for now);
    returns its id."""
    deferred = await manager.defer_job_async(
        Job(
            id=None,
            queue=QUEUE,
            lock=lock,
            queueing_lock=None,
            task_name=name,
            task_kwargs={},
            priority=priority,
            scheduled_at=at,
        )
    )
    assert deferred.id is not None
    return deferred.id
