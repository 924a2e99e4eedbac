"""The job queue: one Procrastinate app, on PostgreSQL, shared by the API and the worker.

Every job is deferred here (delivery attempts, failure-email jobs), by task *name* so
that ``app`` never imports ``jobs``; the tasks themselves live in ``jobs/`` and register
on this app when the worker imports them. The delivery job's arguments have one shape,
:class:`AttemptJob`, which its task reads back. Every statement on Procrastinate's tables
(``procrastinate_*``) is in ``sql/queries/queue.sql`` and runs from here only, but two:
a trigger of migration 0016 defers the first attempt of the delivery that a subject queue
passes to when the one before it ends (whatever statement ended it), through the same
``procrastinate_defer_jobs_v1`` as the fan-out, with this module's queue, task and priority;
and ``record_attempt`` (sql/queries/attempts.sql) finishes its attempt's job through
migration 0022's ``webhooks_finish_job_v1``, as this module's ``DELETE_JOBS`` says.

Its worker (:class:`PunctualWorker`) takes as many jobs as it has free slots in one
fetch (migration 0025), and wakes when a scheduled job comes due, learnt from its fetch.
Its job manager (:class:`RejoiningJobManager`) lets a worker that was paused
(SIGSTOP, a frozen VM, a long GC pause) rejoin: by then another worker may have pruned
its registration as stalled and re-run and finished its jobs. Its named queries run through
Procrastinate's connector, on the same pool as Procrastinate's own. It also skips the
finish of a job that the statement recording its attempt already finished
(:func:`job_finished`; that statement calls migration 0022's ``webhooks_finish_job_v1``,
Procrastinate's finish of a job that succeeded): one statement fewer per attempt.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Unpack

import procrastinate
import psycopg
from procrastinate import exceptions, job_context, jobs, manager, utils, worker
from procrastinate.app import WorkerOptions
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.jobs import DEFAULT_PRIORITY, Job
from procrastinate.types import JSONValue

from app.core.errors import WebhooksError
from app.store.database import Database, Session
from app.store.queries import QUERIES

logger = logging.getLogger(__name__)

WORKER_FOREIGN_KEY = "procrastinate_jobs_worker_id_fkey"
# What procrastinate_finish_job / procrastinate_retry_job raise for a job no longer open.
NO_LONGER_OPEN = "Job was not found or not in"

DELIVER_TASK = "deliver_webhook"
NOTICE_TASK = "send_failure_notice"
RETENTION_TASK = "purge_old_data"

DELIVERY_QUEUE = "deliveries"
NOTICE_QUEUE = "notices"
MAINTENANCE_QUEUE = "maintenance"

TASK_MODULES = ["jobs.delivery", "jobs.notice", "jobs.maintenance"]

# The worker deletes the jobs that succeeded; a job finished with its attempt's record
# is deleted the same way (DELETE_SUCCEEDED_JOBS), so the two never differ.
DELETE_JOBS = jobs.DeleteJobCondition.SUCCESSFUL
DELETE_SUCCEEDED_JOBS = DELETE_JOBS is not jobs.DeleteJobCondition.NEVER


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
    - A fetch that finds nothing to take also learns when the next scheduled job comes
      due (same statement), for :class:`PunctualWorker` to wake up then.
    - Finishing or retrying a job that is no longer open is no error: the paused worker's
      job was re-queued as stalled and another worker finished it. (Raised, it would end
      the job's task with an exception nobody retrieves.) Its attempt was recorded once:
      recording is idempotent.
    - A job that the statement recording its attempt finished (:func:`job_finished`) is
      not finished again, nor retried: it is closed already, and a retry would re-send an
      attempt that was recorded.
    """

    def __init__(self, connector: procrastinate.BaseConnector) -> None:
        super().__init__(connector)
        # Per worker: the time.monotonic() at which the next scheduled job (of any queue,
        # see fetch_jobs in queue.sql) comes due, as its last fetch that found nothing saw
        # it (absent: none scheduled).
        self._next_due: dict[int, float] = {}
        # Ids of running jobs already finished in the database; each is dropped when the
        # worker comes to finish (or retry) the job, which it always does once.
        self.finished_by_task: set[int] = set()

    def _finished_by_task(self, job: jobs.Job) -> bool:
        if job.id is None or job.id not in self.finished_by_task:
            return False
        self.finished_by_task.discard(job.id)
        return True

    async def update_heartbeat(self, worker_id: int) -> None:
        await self.connector.execute_query_async(QUERIES["worker_heartbeat"], worker_id=worker_id)

    async def fetch_job(self, queues: Iterable[str] | None, worker_id: int) -> jobs.Job | None:
        taken = await self.fetch_jobs(queues, worker_id, 1)
        return taken[0] if taken else None

    async def fetch_jobs(
        self, queues: Iterable[str] | None, worker_id: int, max_jobs: int
    ) -> list[jobs.Job]:
        """Take up to ``max_jobs`` due jobs for ``worker_id`` in one statement: the jobs
        Procrastinate's fetch would take one by one (migration 0025), higher priorities
        first."""
        try:
            return await self._fetch_jobs(queues, worker_id, max_jobs)
        except exceptions.ConnectorException as error:
            if not names_a_pruned_worker(error):
                raise
        logger.warning("worker %d was pruned as stalled (paused?): registering it again", worker_id)
        await self.update_heartbeat(worker_id)
        return await self._fetch_jobs(queues, worker_id, max_jobs)

    async def _fetch_jobs(
        self, queues: Iterable[str] | None, worker_id: int, max_jobs: int
    ) -> list[jobs.Job]:
        rows = await self.connector.execute_query_all_async(
            QUERIES["fetch_jobs"],
            queues=None if queues is None else list(queues),
            worker_id=worker_id,
            max_jobs=max_jobs,
        )
        taken = [jobs.Job.from_row(row) for row in rows if row["id"] is not None]
        if taken:
            return taken
        due = rows[0]["next_due_seconds"] if rows else None
        if due is None:
            self._next_due.pop(worker_id, None)
        else:
            self._next_due[worker_id] = time.monotonic() + due
        return []

    def seconds_until_due(self, worker_id: int) -> float:
        """How long until the next scheduled job comes due, as ``worker_id``'s last empty
        fetch saw it; infinite when none was scheduled."""
        due = self._next_due.get(worker_id)
        return math.inf if due is None else max(0.0, due - time.monotonic())

    async def unregister_worker(self, worker_id: int) -> None:
        self._next_due.pop(worker_id, None)
        await super().unregister_worker(worker_id)

    async def finish_job(self, job: jobs.Job, status: jobs.Status, delete_job: bool) -> None:
        if self._finished_by_task(job):
            return
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
        if self._finished_by_task(job):
            return
        try:
            await super().retry_job(job, retry_at, priority, queue, lock)
        except exceptions.ConnectorException as error:
            if not finds_the_job_closed(error):
                raise
            _finished_elsewhere(job)


class PunctualWorker(worker.Worker):
    """Procrastinate's worker, taking its jobs in batches and waking when a scheduled job
    comes due.

    - **Batches.** Procrastinate's loop takes a free slot, fetches one job, starts it, and
      again: a round trip and a commit per job, one after the other, which bounded a
      worker's rate. This loop takes every free slot at once and fetches that many jobs
      in one statement (:meth:`RejoiningJobManager.fetch_jobs`), then starts them all. Under
      load the batch is what finished during the previous fetch, so it grows with the rate;
      an idle worker fetches as before. Each job runs as Procrastinate runs it
      (``_process_job``, the same context, slot and bookkeeping), and no job waits in the
      worker unstarted.
    - **Punctual.** Procrastinate's worker, once a fetch finds nothing, waits for a
      notification (sent when a job is queued) or its polling interval, whichever comes
      first. A job scheduled for later (a retry) sends its notification when queued, not
      when due: it was found by the next poll, up to a whole interval late. This worker
      waits at most until the next scheduled job is due (its fetch tells, see
      :class:`RejoiningJobManager`), so it polls no more often when idle and a retry
      starts on time. Procrastinate's loop reads the interval once per wait, right after
      the fetch that found nothing; an upgrade that stops reading it there fails
      tests/integration/test_retry_punctuality.py.

    The loop uses Procrastinate 3's private worker state (its semaphore, stop and
    new-job events, running jobs, ``_process_job``): an upgrade that changes them fails
    tests/integration/test_worker_fetch_batches.py.
    """

    @property
    def fetch_job_polling_interval(self) -> float:
        manager = self.app.job_manager
        if self.worker_id is None or not isinstance(manager, RejoiningJobManager):
            return self._poll_interval
        return min(self._poll_interval, manager.seconds_until_due(self.worker_id))

    @fetch_job_polling_interval.setter
    def fetch_job_polling_interval(self, seconds: float) -> None:
        self._poll_interval = seconds

    async def _fetch_and_process_jobs(self) -> None:
        """Fetch and start jobs, a batch at a time, until none is left or asked to stop."""
        manager = self.app.job_manager
        if not isinstance(manager, RejoiningJobManager):
            raise TypeError("a PunctualWorker's app needs a RejoiningJobManager to fetch batches")
        slots = self._job_semaphore
        while not self._stop_event.is_set():
            first_slot = asyncio.create_task(slots.acquire())
            held = 0
            taken: list[jobs.Job] = []
            try:
                await utils.wait_any(first_slot, self._stop_event.wait())
                if first_slot.done() and not first_slot.cancelled():
                    held = 1
                if self._stop_event.is_set():
                    break
                # A free semaphore is acquired without waiting: take every free slot.
                while not slots.locked():
                    await slots.acquire()
                    held += 1
                if self.worker_id is None:  # run() registers the worker before this loop
                    raise RuntimeError("the worker fetches jobs before it is registered")
                # Cleared before the fetch, not after (as Procrastinate's loop does): a job
                # committed while the fetch runs may be past its snapshot, and its
                # notification, cleared after, was lost: the worker slept until its next
                # poll with that job waiting.
                self._new_job_event.clear()
                taken = await manager.fetch_jobs(self.queues, self.worker_id, held)
            finally:
                for _ in range(held - len(taken)):
                    slots.release()
            for job in taken:
                self._start(job)
            if len(taken) < held:
                break

    def _start(self, job: jobs.Job) -> None:
        """Run ``job`` in a task of its own, holding one slot until it ends (as
        Procrastinate's loop starts each job it fetched)."""
        job_id = job.id
        context = job_context.JobContext(
            app=self.app,
            worker_name=self.worker_name,
            worker_queues=self.queues,
            additional_context=self.additional_context.copy() if self.additional_context else {},
            job=job,
            abort_reason=lambda job_id=job_id: (  # type: ignore[misc]
                self._job_ids_to_abort.get(job_id) if job_id else None
            ),
            start_timestamp=time.time(),
        )
        task = asyncio.create_task(
            self._process_job(context),
            name=f"process job {job.task_name}[{job.id}]",
        )
        self._running_jobs[task] = context

        def on_job_complete(done: asyncio.Task[Any]) -> None:
            del self._running_jobs[done]
            self._job_semaphore.release()

        task.add_done_callback(on_job_complete)


async def run_punctual_worker(app: procrastinate.App, **options: Unpack[WorkerOptions]) -> None:
    """Run a :class:`PunctualWorker` on ``app`` until it stops, as ``app.run_worker_async``
    runs Procrastinate's (our app sets no ``worker_defaults``: every option is given)."""
    # Both are what run_worker_async calls; Procrastinate leaves them unannotated.
    app.perform_import_paths()  # type: ignore[no-untyped-call]
    await PunctualWorker(app=app, **options).run()  # type: ignore[no-untyped-call]


def job_finished(app: procrastinate.App, job_id: int) -> None:
    """Say that job ``job_id``, running in this worker, was finished in the database by a
    committed statement (it succeeded), so that the worker does not finish it again."""
    manager = app.job_manager
    if isinstance(manager, RejoiningJobManager):
        manager.finished_by_task.add(job_id)


def _finished_elsewhere(job: jobs.Job) -> None:
    logger.warning(
        "job %s (%s) was no longer open: re-queued as stalled while this worker was paused,"
        " and finished by another",
        job.id,
        job.task_name,
    )


@dataclass(frozen=True)
class AttemptJob:
    """The delivery job's arguments: attempt ``attempt`` of ``cycle`` of a delivery.

    ``postponed`` counts how often the worker already put this attempt off
    (app/delivery/fairness.py); the job carries it only once it is not 0. ``slot`` is the
    moment (the database's clock) of the slot of its subscription's delivery rate that the
    attempt holds (app/delivery/pacing.py), carried only by a job queued for one; ``missed``
    how many slots the attempt gave up, having come too late for them (carried once not
    0). The fan-out statement (``fan_out_event`` in sql/queries/queue.sql) builds the same
    arguments for first attempts in SQL; tests/unit/test_queue_jobs.py holds the two
    together.
    """

    delivery_id: uuid.UUID
    cycle: int
    attempt: int
    postponed: int = 0
    slot: datetime.datetime | None = None
    missed: int = 0

    def as_task_kwargs(self) -> dict[str, JSONValue]:
        """The job's ``task_kwargs``, as the delivery task is called with them."""
        kwargs: dict[str, JSONValue] = {
            "delivery_id": str(self.delivery_id),
            "cycle": self.cycle,
            "attempt": self.attempt,
        }
        if self.postponed:
            kwargs["postponed"] = self.postponed
        if self.slot is not None:
            kwargs["slot"] = self.slot.isoformat()
        if self.missed:
            kwargs["missed"] = self.missed
        return kwargs

    @classmethod
    def from_task_kwargs(cls, kwargs: Mapping[str, object]) -> AttemptJob:
        """The attempt a delivery job's ``task_kwargs`` name (see :meth:`as_task_kwargs`)."""
        known = {"delivery_id", "cycle", "attempt", "postponed", "slot", "missed"}
        unknown = set(kwargs) - known
        if unknown:
            raise TypeError(f"a delivery job got unexpected arguments: {sorted(unknown)}")
        delivery_id, cycle, attempt = kwargs["delivery_id"], kwargs["cycle"], kwargs["attempt"]
        postponed = kwargs.get("postponed", 0)
        slot = kwargs.get("slot")
        missed = kwargs.get("missed", 0)
        if not (
            isinstance(delivery_id, str)
            and isinstance(cycle, int)
            and isinstance(attempt, int)
            and isinstance(postponed, int)
            and isinstance(slot, str | None)
            and isinstance(missed, int)
        ):
            raise TypeError(f"a delivery job's arguments have the wrong types: {dict(kwargs)}")
        held = None if slot is None else datetime.datetime.fromisoformat(slot)
        return cls(uuid.UUID(delivery_id), cycle, attempt, postponed, held, missed)


@dataclass(frozen=True)
class OrphanedAttempt:
    """An open delivery's attempt whose job was lost, and how often it was re-queued."""

    job: AttemptJob
    requeues: int


@dataclass(frozen=True)
class QueueDepth:
    """The jobs of one queue: due now, scheduled for later, running."""

    queue: str
    due: int
    scheduled: int
    running: int


@dataclass(frozen=True)
class QueueSnapshot:
    """What /metrics reports of the queue and the work waiting in it."""

    depths: tuple[QueueDepth, ...]
    oldest_due_seconds: float
    workers_up: int
    heartbeat_age_seconds: float | None  # None: no worker is registered
    retries_pending: int
    emails_unsent: int
    oldest_unsent_email_seconds: float
    failures_unreported: int


class FanOutMismatch(WebhooksError, RuntimeError):
    """The fan-out queued a different number of jobs than it made deliveries."""


async def defer_attempts(
    app: procrastinate.App,
    tx: Session,
    attempts: Sequence[AttemptJob],
    *,
    schedule_at: datetime.datetime | None = None,
    priority: int = DEFAULT_PRIORITY,
) -> None:
    """Queue delivery jobs on ``app``, one per attempt, inside ``tx``.

    The per-delivery lock keeps two attempts of one delivery from ever running at once,
    even across worker processes. Workers take due jobs by ``priority`` first (higher
    first), then in the order they were queued.
    """
    if not attempts:
        return

    jobs = [
        Job(
            id=None,
            queue=DELIVERY_QUEUE,
            lock=str(attempt.delivery_id),
            queueing_lock=None,
            task_name=DELIVER_TASK,
            priority=priority,
            task_kwargs=attempt.as_task_kwargs(),
            scheduled_at=schedule_at,
        )
        for attempt in attempts
    ]
    await app.job_manager.batch_defer_jobs_async(jobs, connection=tx.connection)


async def fan_out_event(
    tx: Session,
    *,
    event_id: uuid.UUID,
    company_id: str,
    webhook_key: str,
    subject: str | None,
    max_attempts: int,
    subscription_id: uuid.UUID | None,
) -> int:
    """Inside ``tx``: one delivery per matching active subscription (only
    ``subscription_id``'s when given), each with the job of its first attempt, in one
    statement; returns how many deliveries were made. On a subscription ordered per
    subject, one that waits for an earlier delivery of ``subject`` is HELD, with no job.

    Raises :class:`FanOutMismatch` (and so rolls ``tx`` back) if the jobs queued are not
    one per delivery that is not held.
    """
    # No round trip between deliveries and jobs, and no job rows built and encoded in
    # Python (Procrastinate's batch defer spent more time encoding 100 jobs than
    # PostgreSQL spent inserting them).
    fanned_out = await tx.fetch_one(
        "fan_out_event",
        event_id=event_id,
        company_id=company_id,
        webhook_key=webhook_key,
        subject=subject,
        max_attempts=max_attempts,
        subscription_id=subscription_id,
        queue=DELIVERY_QUEUE,
        task=DELIVER_TASK,
        priority=DEFAULT_PRIORITY,
    )
    if fanned_out is None:
        raise FanOutMismatch(f"the fan-out of event {event_id} returned no counts")
    deliveries: int = fanned_out["deliveries"]
    held: int = fanned_out["held"]
    if fanned_out["jobs"] != deliveries - held:
        raise FanOutMismatch(
            f"the fan-out of event {event_id} queued {fanned_out['jobs']} jobs"
            f" for {deliveries} deliveries" + (f" ({held} held)" if held else "")
        )
    return deliveries


def notice_lock(subscription_id: uuid.UUID | str, *, with_reason: bool = False) -> str:
    """The queueing lock of a subscription's email job.

    An email saying why delivery stopped (410 Gone) has a lock of its own: behind the
    job waiting out the grouping window it would be late, and its reason lost.
    """
    return f"notice:{subscription_id}" + (":reason" if with_reason else "")


async def defer_notice(
    app: procrastinate.App,
    tx: Session | None,
    subscription_id: uuid.UUID | str,
    *,
    delay_seconds: float,
    reason: str | None = None,
    postponed: int = 0,
) -> None:
    """Queue the email job of a subscription unless one is already waiting.

    The queueing lock allows one waiting job per subscription (and one more with a
    reason); when one waits, it will pick this report up too. Inside ``tx`` the insert
    runs in a savepoint so that refusal does not abort the caller's transaction.
    """
    deferrer = app.configure_task(
        NOTICE_TASK,
        queue=NOTICE_QUEUE,
        queueing_lock=notice_lock(subscription_id, with_reason=reason is not None),
        schedule_at=datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=delay_seconds),
        connection=tx.connection if tx else None,
    )
    arguments: dict[str, JSONValue] = {"subscription_id": str(subscription_id), "reason": reason}
    if postponed:
        arguments["postponed"] = postponed
    try:
        if tx is None:
            await deferrer.defer_async(**arguments)
            return
        async with tx.connection.transaction():
            await deferrer.defer_async(**arguments)
    except AlreadyEnqueued:
        pass


async def repace_waiting_attempts(tx: Session, subscription_id: uuid.UUID) -> int:
    """Inside ``tx``: make a subscription's attempts queued for a slot of its delivery
    rate due now, holding no slot (its rate changed); returns how many."""
    return await tx.execute(
        "repace_waiting_attempts", subscription_id=subscription_id, priority=DEFAULT_PRIORITY
    )


async def wake_delivery_workers(db: Database) -> None:
    """Wake every worker listening on the delivery queue, as a new job does: scheduled
    jobs coming due are otherwise found only by polling."""
    await db.execute("wake_delivery_workers", queue=DELIVERY_QUEUE)


async def requeue_stalled_jobs(app: procrastinate.App, *, seconds_since_heartbeat: float) -> int:
    """Re-queue the jobs of workers silent that long (a SIGKILLed worker leaves its job in
    ``doing``); returns how many."""
    stalled = list(
        await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=seconds_since_heartbeat)
    )
    for job in stalled:
        logger.warning("re-queueing stalled job %s (%s)", job.id, job.task_name)
        await app.job_manager.retry_job(job)
    return len(stalled)


async def orphaned_attempts(
    tx: Session, *, grace_seconds: float, limit: int
) -> list[OrphanedAttempt]:
    """Inside ``tx``: the next attempts of open deliveries overdue by ``grace_seconds``
    that have no queued or running job, each counted as re-queued once more."""
    rows = await tx.fetch_all("orphaned_deliveries", grace_seconds=grace_seconds, limit=limit)
    return [
        OrphanedAttempt(AttemptJob(row["id"], row["cycle"], row["attempt"]), row["requeues"])
        for row in rows
    ]


async def subscriptions_with_unsent_notices(
    db: Database, *, older_than_seconds: float
) -> list[uuid.UUID]:
    """Subscriptions whose failures waited that long for an email that no queued or
    running email job will send."""
    rows = await db.fetch_all(
        "subscriptions_with_unsent_notices",
        older_than_seconds=older_than_seconds,
        task_name=NOTICE_TASK,
    )
    return [row["subscription_id"] for row in rows]


async def cancel_open_deliveries(tx: Session, subscription_id: uuid.UUID) -> None:
    """Inside ``tx``: cancel a subscription's pending and retrying deliveries, and their
    waiting jobs."""
    await tx.execute("cancel_open_deliveries", subscription_id=subscription_id)


async def release_held_deliveries(tx: Session, subscription_id: uuid.UUID) -> int:
    """Inside ``tx``: send a subscription's HELD deliveries now (its ordering was switched
    off), each with the job of its first attempt; returns how many."""
    released = await tx.fetch_one(
        "release_held_deliveries",
        subscription_id=subscription_id,
        queue=DELIVERY_QUEUE,
        task=DELIVER_TASK,
        priority=DEFAULT_PRIORITY,
    )
    count: int = released["released"] if released else 0
    if released is None or released["jobs"] != count:
        raise FanOutMismatch(f"releasing the held deliveries of {subscription_id} lost jobs")
    return count


async def purge_finished_jobs(tx: Session, cutoff: datetime.datetime, batch: int) -> int:
    """Delete up to ``batch`` finished jobs last touched before ``cutoff``; returns how many."""
    return await tx.execute("purge_finished_jobs", cutoff=cutoff, batch=batch)


async def queue_snapshot(db: Database, alive_seconds: float) -> QueueSnapshot:
    """The queue and the work waiting in it, now (one statement); a worker counts as up
    when it heartbeated within ``alive_seconds``."""
    row = await db.fetch_one("metrics_snapshot", alive_seconds=alive_seconds)
    if row is None:  # a SELECT of aggregates always answers one row
        raise RuntimeError("metrics_snapshot returned no row")
    depths = {
        d["queue"]: QueueDepth(d["queue"], d["due"], d["scheduled"], d["running"])
        for d in row["depths"]
    }
    # An empty queue has no row, yet its series must read 0, not vanish.
    for name in (DELIVERY_QUEUE, NOTICE_QUEUE, MAINTENANCE_QUEUE):
        depths.setdefault(name, QueueDepth(name, 0, 0, 0))
    return QueueSnapshot(
        depths=tuple(sorted(depths.values(), key=lambda depth: depth.queue)),
        oldest_due_seconds=row["oldest_due_seconds"],
        workers_up=row["workers_up"],
        heartbeat_age_seconds=row["heartbeat_age_seconds"],
        retries_pending=row["retries_pending"],
        emails_unsent=row["emails_unsent"],
        oldest_unsent_email_seconds=row["oldest_unsent_email_seconds"],
        failures_unreported=row["failures_unreported"],
    )


queue = procrastinate.App(
    connector=procrastinate.PsycopgConnector(),
    import_paths=TASK_MODULES,
)
# Tasks look the manager up when they are configured, so replacing it here (before any
# task is deferred) covers every use.
queue.job_manager = RejoiningJobManager(queue.connector)
