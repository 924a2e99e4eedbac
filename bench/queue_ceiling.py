"""B: the queue ceiling. No-op Procrastinate jobs per second, run by real worker processes
(``bench.noop_worker``) with the delivery worker's settings, 1 then 2 processes; then the
same with stock Procrastinate (its own schema in a database of its own, its worker's
defaults, none of our queue tuning; the same concurrency) as the baseline beside it.

The workers start first and idle; then all jobs are inserted in one transaction, and the
clock runs from that commit until the queue is empty (successful jobs are deleted).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import procrastinate
import psycopg

from app.store.database import Database
from bench.cpu import CpuMeter
from bench.noop import NOOP_QUEUE, apply_stock_schema, noop_jobs, noop_queue
from bench.processes import PYTHON, Child
from bench.queries import BENCH_QUERIES
from bench.stats import rate
from bench.suite import Bench, wait_for_workers

CHUNK = 1000


async def defer_all(database_url: str, count: int) -> float:
    """Insert ``count`` no-op jobs in one transaction; returns the time.time() of the commit."""
    pool = Database.create_pool(database_url, max_size=2)
    with noop_queue.replace_connector(procrastinate.PsycopgConnector()):
        async with pool, noop_queue.open_async(pool), pool.connection() as connection:
            async with connection.transaction():
                for start in range(0, count, CHUNK):
                    jobs = noop_jobs(min(CHUNK, count - start))
                    await noop_queue.job_manager.batch_defer_jobs_async(jobs, connection=connection)
            return time.time()


async def wait_until_empty(database_url: str, within: float, query: str = "queued_jobs") -> float:
    """Poll until no job of the no-op queue is left (``query`` counts what is left);
    returns when that was seen."""
    deadline = time.monotonic() + within
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as connection:
        while True:
            cursor = await connection.execute(BENCH_QUERIES[query], {"queue": NOOP_QUEUE})
            row = await cursor.fetchone()
            if row is not None and row[0] == 0:
                return time.time()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{row[0] if row else '?'} no-op jobs still queued")
            await asyncio.sleep(0.02)


async def ceiling(bench: Bench, database_url: str, stock: bool) -> list[dict[str, Any]]:
    """Jobs/s of 1 then 2 no-op worker processes on ``database_url``: ours (the delivery
    worker's settings, our schema) or stock Procrastinate's (``stock``)."""
    env = bench.service_env(database_url)
    workers: list[Child] = []
    results = []
    count = bench.sizes.queue_jobs
    argv = [PYTHON, "-m", "bench.noop_worker", *(["--stock", database_url] if stock else [])]
    try:
        for processes in (1, 2):
            name = f"{'stock' if stock else 'noop'}-worker-{processes}"
            workers.append(Child(name, argv, env, bench.work_dir / f"{name}.log"))
            wait_for_workers(database_url, workers[-1], expected=processes)
            meter = CpuMeter(
                {"workers": [worker.pid for worker in workers]},
                bench.databases.postmaster_pid(),
            )
            meter.start()
            committed = await defer_all(database_url, count)
            emptied = await wait_until_empty(
                database_url,
                within=60 + count / 50,
                query="unfinished_jobs" if stock else "queued_jobs",
            )
            seconds = emptied - committed
            cpu = meter.stop()
            results.append(
                {
                    "processes": processes,
                    "concurrency": bench.sizes.concurrency,
                    "jobs": count,
                    "seconds": round(seconds, 2),
                    "per_second": rate(count, seconds),
                    "cpu_seconds": cpu,
                    "cpu_ms_per_job": {
                        name: round(used * 1000 / count, 2)
                        for name, used in cpu.items()
                        if name not in ("wall", "driver (API)")
                    },
                }
            )
            what = "stock Procrastinate" if stock else "B"
            bench.log(f"[bench] {what} {processes} process(es): {results[-1]['per_second']} jobs/s")
            for worker in workers:
                worker.check()
    finally:
        for worker in workers:
            worker.stop()
    return results


async def run(bench: Bench) -> dict[str, Any]:
    tuned = await ceiling(bench, bench.databases.create("queue"), stock=False)
    # Stock Procrastinate on a database of its own holding only Procrastinate's schema.
    stock_url = bench.databases.create_empty("stock_queue")
    await apply_stock_schema(stock_url)
    stock = await ceiling(bench, stock_url, stock=True)
    return {
        "title": "Queue ceiling (no-op Procrastinate jobs, delivery-shaped, worker settings)",
        "runs": tuned,
        "stock": {
            "title": "Stock Procrastinate (its schema, its worker's defaults, same concurrency)",
            "runs": stock,
        },
    }
