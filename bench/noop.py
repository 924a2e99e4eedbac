"""The queue ceiling's worker: the delivery worker's queue running a task that does nothing.

``python -m bench.noop_worker`` runs it with exactly the delivery worker's loop
(``PunctualWorker``, batched fetches) and settings (read from the same ``WEBHOOKS_*``
variables): concurrency, polling interval, heartbeat, pool size, deleting successful jobs.
Whatever it reaches is the most any delivery worker could.
``python -m bench.noop_worker --stock URL`` runs stock Procrastinate instead (``run_stock``).
"""

from __future__ import annotations

import uuid
from typing import Any

import procrastinate
from procrastinate import JobContext
from procrastinate.jobs import DEFAULT_PRIORITY, Job
from psycopg_pool import AsyncConnectionPool

from app.core.settings import Settings
from app.store.database import Database
from app.store.queue import DELETE_JOBS, RejoiningJobManager, run_punctual_worker

NOOP_TASK = "bench_noop"
NOOP_QUEUE = "bench_noop"

noop_queue = procrastinate.App(connector=procrastinate.PsycopgConnector())


@noop_queue.task(name=NOOP_TASK, queue=NOOP_QUEUE, pass_context=True)
async def bench_noop(context: JobContext, delivery_id: str, cycle: int, attempt: int) -> None:
    """Takes the delivery job's arguments and does nothing with them."""


def noop_jobs(count: int) -> list[Job]:
    """Jobs shaped like delivery jobs: the same arguments, a lock of their own each."""
    return [
        Job(
            id=None,
            queue=NOOP_QUEUE,
            lock=str(delivery_id),
            queueing_lock=None,
            task_name=NOOP_TASK,
            priority=DEFAULT_PRIORITY,
            task_kwargs={"delivery_id": str(delivery_id), "cycle": 1, "attempt": 1},
        )
        for delivery_id in (uuid.uuid4() for _ in range(count))
    ]


async def run_stock(database_url: str, concurrency: int) -> None:
    """Stock Procrastinate: its own connector and pool, its worker's defaults (polling,
    heartbeat, jobs kept after success), only the concurrency set as ours is."""
    with noop_queue.replace_connector(procrastinate.PsycopgConnector(conninfo=database_url)):
        async with noop_queue.open_async():
            await noop_queue.run_worker_async(queues=[NOOP_QUEUE], concurrency=concurrency)


async def apply_stock_schema(database_url: str) -> None:
    """Procrastinate's own schema, as ``procrastinate schema --apply`` creates it."""
    with noop_queue.replace_connector(procrastinate.PsycopgConnector(conninfo=database_url)):
        async with noop_queue.open_async():
            await noop_queue.schema_manager.apply_schema_async()


async def run(settings: Settings) -> None:
    """Mirror ``app.delivery.worker.run_worker``'s call, with the no-op task: our worker
    loop (batched fetches) and job manager, as the delivery worker runs them."""
    assert settings.database_url is not None
    pool = Database.create_pool(settings.database_url, max_size=settings.db_pool_max_size)
    stock_manager = noop_queue.job_manager
    noop_queue.job_manager = RejoiningJobManager(noop_queue.connector)
    try:
        await _run_ours(settings, pool)
    finally:
        noop_queue.job_manager = stock_manager


async def _run_ours(settings: Settings, pool: AsyncConnectionPool[Any]) -> None:
    with noop_queue.replace_connector(procrastinate.PsycopgConnector()):
        async with pool, noop_queue.open_async(pool):
            await run_punctual_worker(
                noop_queue,
                queues=[NOOP_QUEUE],
                concurrency=settings.worker_concurrency,
                wait=True,
                fetch_job_polling_interval=settings.poll_interval_seconds,
                shutdown_graceful_timeout=settings.request_timeout_seconds + 2,
                update_heartbeat_interval=max(1.0, settings.stalled_after_seconds / 4),
                stalled_worker_timeout=settings.stalled_after_seconds,
                delete_jobs=DELETE_JOBS,
            )
