"""The delivery job: one attempt of one delivery (a thin layer over app.delivery.attempts)."""

from __future__ import annotations

from procrastinate import JobContext, RetryStrategy
from procrastinate.types import JSONValue

from app.delivery.attempts import make_attempt
from app.delivery.worker import WorkerRuntime
from app.store.database import WORKER_SCOPE, scoped
from app.store.queue import DELIVER_TASK, DELIVERY_QUEUE, AttemptJob, queue


@queue.task(
    name=DELIVER_TASK,
    queue=DELIVERY_QUEUE,
    pass_context=True,
    # Only for unexpected errors (e.g. the database going away while recording);
    # HTTP failures are outcomes, recorded and rescheduled by make_attempt itself.
    retry=RetryStrategy(max_attempts=30, linear_wait=2),
)
async def deliver_webhook(context: JobContext, /, **arguments: JSONValue) -> str:
    # The arguments have the one shape app.store.queue gives every delivery job.
    job = AttemptJob.from_task_kwargs(arguments)
    runtime: WorkerRuntime = context.additional_context["runtime"]
    with scoped(WORKER_SCOPE):
        # The in-flight cap per subscription keeps a hung endpoint from taking every slot.
        return await make_attempt(
            runtime.services,
            runtime.transport,
            str(job.delivery_id),
            job.cycle,
            job.attempt,
            in_flight=runtime.in_flight,
            postponed=job.postponed,
            # A job Procrastinate runs again (it failed, or stalled) lost its slot meanwhile.
            held_slot=job.slot if context.job.attempts == 0 else None,
            missed_slots=job.missed,
            wake_ups=runtime.wake_ups,
            # Recording the attempt finishes the job, and the worker then does not.
            job_id=context.job.id,
            # Attempts that start together load their deliveries with one statement.
            loads=runtime.loads,
        )
