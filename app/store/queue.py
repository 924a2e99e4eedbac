"""The job queue: one Procrastinate app, on PostgreSQL, shared by the API and the worker.

Domain code defers jobs by task *name* (``queue.configure_task(NAME, ...)``) so that
``app`` never imports ``jobs``; the tasks themselves live in ``jobs/`` and register on
this app when the worker imports them.

Its job manager (:class:`RejoiningJobManager`) lets a worker that was paused (SIGSTOP, a
frozen VM, a long GC pause) rejoin: by then another worker may have pruned its
registration as stalled and re-run and finished its jobs. Its named queries run through
Procrastinate's connector, on the same pool as Procrastinate's own.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Iterable

import procrastinate
import psycopg
from procrastinate import exceptions, jobs, manager
from procrastinate.jobs import DEFAULT_PRIORITY, Job

from app.store.database import Session
from app.store.queries import QUERIES

logger = logging.getLogger(__name__)

WORKER_FOREIGN_KEY = "procrastinate_jobs_worker_id_fkey"
# What procrastinate_finish_job / procrastinate_retry_job raise for a job no longer open.
NO_LONGER_OPEN = "Job was not found or not in"

DELIVER_TASK = "deliver_webhook"
NOTIFY_TASK = "send_failure_notice"
RETENTION_TASK = "purge_old_data"

DELIVERY_QUEUE = "deliveries"
NOTICE_QUEUE = "notices"
MAINTENANCE_QUEUE = "maintenance"

TASK_MODULES = ["jobs.delivery", "jobs.notice", "jobs.maintenance"]


def names_a_pruned_worker(error: BaseException) -> bool:
    """Whether ``error`` is a job naming a worker registration that is gone."""
    cause = error.__cause__
    return (
        isinstance(cause, psycopg.errors.ForeignKeyViolation)
        and cause.diag.constraint_name == WORKER_FOREIGN_KEY
    )


def finds_the_job_closed(error: BaseException) -> bool:
    """Whether ``error`` says the job was no longer open (another worker finished it)."""
    cause = error.__cause__
    return isinstance(cause, psycopg.errors.RaiseException) and NO_LONGER_OPEN in (
        cause.diag.message_primary or ""
    )


class RejoiningJobManager(manager.JobManager):
    """Procrastinate's job manager, for workers that may come back from a pause.

    - The heartbeat registers the worker again if it was pruned (Procrastinate's only
      updates the row, and then the worker's next fetch fails on the foreign key).
    - A fetch that fails because the registration is gone re-registers and fetches again
      (the fetch may come before the first heartbeat after the pause).
    - Finishing or retrying a job that is no longer open is no error: the paused worker's
      job was re-queued as stalled and another worker finished it. (Raised, it would end
      the job's task with an exception nobody retrieves.) Its attempt was recorded once:
      recording is idempotent.
    """

    async def update_heartbeat(self, worker_id: int) -> None:
        await self.connector.execute_query_async(QUERIES["worker_heartbeat"], worker_id=worker_id)

    async def fetch_job(self, queues: Iterable[str] | None, worker_id: int) -> jobs.Job | None:
        try:
            return await super().fetch_job(queues, worker_id)
        except exceptions.ConnectorException as error:
            if not names_a_pruned_worker(error):
                raise
        logger.warning("worker %d was pruned as stalled (paused?): registering it again", worker_id)
        await self.update_heartbeat(worker_id)
        return await super().fetch_job(queues, worker_id)

    async def finish_job(self, job: jobs.Job, status: jobs.Status, delete_job: bool) -> None:
        try:
            await super().finish_job(job, status, delete_job)
        except exceptions.ConnectorException as error:
            if not finds_the_job_closed(error):
                raise
            _finished_elsewhere(job)

    async def retry_job(
        self,
        job: jobs.Job,
        retry_at: datetime.datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        lock: str | None = None,
    ) -> None:
        try:
            await super().retry_job(job, retry_at, priority, queue, lock)
        except exceptions.ConnectorException as error:
            if not finds_the_job_closed(error):
                raise
            _finished_elsewhere(job)


def _finished_elsewhere(job: jobs.Job) -> None:
    logger.warning(
        "job %s (%s) was no longer open: re-queued as stalled while this worker was paused,"
        " and finished by another",
        job.id,
        job.task_name,
    )


async def defer_attempts(
    app: procrastinate.App,
    tx: Session,
    attempts: list[tuple[uuid.UUID, int, int]],
    *,
    schedule_at: datetime.datetime | None = None,
    priority: int = DEFAULT_PRIORITY,
    postponed: int = 0,
) -> None:
    """Queue delivery jobs on ``app`` ``(delivery id, cycle, attempt number)`` inside ``tx``.

    One job per attempt; the per-delivery lock keeps two attempts of one delivery from
    ever running at once, even across worker processes. Workers take due jobs by
    ``priority`` first (higher first), then in the order they were queued. ``postponed``
    counts how often the worker already put these attempts off (app/delivery/fairness.py).
    """
    if not attempts:
        return

    jobs = [
        Job(
            id=None,
            queue=DELIVERY_QUEUE,
            lock=str(delivery_id),
            queueing_lock=None,
            task_name=DELIVER_TASK,
            priority=priority,
            task_kwargs={
                "delivery_id": str(delivery_id),
                "cycle": cycle,
                "attempt": attempt,
                **({"postponed": postponed} if postponed else {}),
            },
            scheduled_at=schedule_at,
        )
        for delivery_id, cycle, attempt in attempts
    ]
    await app.job_manager.batch_defer_jobs_async(jobs, connection=tx.connection)


queue = procrastinate.App(
    connector=procrastinate.PsycopgConnector(),
    import_paths=TASK_MODULES,
)
# Tasks look the manager up when they are configured, so replacing it here (before any
# task is deferred) covers every use.
queue.job_manager = RejoiningJobManager(queue.connector)
