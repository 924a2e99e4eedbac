"""Periodic maintenance jobs (thin layers over app/)."""

from __future__ import annotations

import logging

from procrastinate import JobContext

from app.delivery.worker import WorkerRuntime
from app.domain.retention import purge_old_data
from app.store.queue import MAINTENANCE_QUEUE, RETENTION_TASK, queue

logger = logging.getLogger(__name__)


@queue.periodic(cron="17 * * * *", periodic_id="hourly")
@queue.task(
    name=RETENTION_TASK, queue=MAINTENANCE_QUEUE, pass_context=True, queueing_lock="retention"
)
async def purge_old_data_job(context: JobContext, timestamp: int) -> None:
    runtime: WorkerRuntime = context.additional_context["runtime"]
    services = runtime.services
    report = await purge_old_data(services.db, services.settings.retention_days)
    logger.info("retention purge: %s", report)
