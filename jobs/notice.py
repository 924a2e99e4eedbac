"""The failure email job (a thin layer over app.delivery.notices)."""

from __future__ import annotations

from procrastinate import JobContext, RetryStrategy

from app.delivery.notices import run_notice_job
from app.delivery.worker import WorkerRuntime
from app.store.database import WORKER_SCOPE, scoped
from app.store.queue import NOTICE_QUEUE, NOTICE_TASK, queue


@queue.task(
    name=NOTICE_TASK,
    queue=NOTICE_QUEUE,
    pass_context=True,
    retry=RetryStrategy(max_attempts=30, linear_wait=5),
)
async def send_failure_notice(
    context: JobContext, subscription_id: str, reason: str | None = None, postponed: int = 0
) -> int:
    runtime: WorkerRuntime = context.additional_context["runtime"]
    with scoped(WORKER_SCOPE):
        run = await run_notice_job(
            runtime.services,
            runtime.mailer,
            runtime.email_slots,
            subscription_id,
            reason,
            postponed,
        )
    return run.sent
