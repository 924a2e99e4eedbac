"""The delivery flow shared by phases C, D, E and H: one database, ``webhooks worker``
processes on it, and the driver's in-process API for publishing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg

from app.core.settings import Settings
from bench.processes import Child
from bench.queries import BENCH_QUERIES
from bench.suite import Bench


class Flow:
    """The flow database and the worker processes currently running on it."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.database_url = bench.databases.create("flow")
        self.workers: list[Child] = []

    @property
    def settings(self) -> Settings:
        return self.bench.settings(self.database_url)

    def ensure_workers(self, count: int) -> None:
        """Start ``webhooks worker`` processes until ``count`` run."""
        while len(self.workers) < count:
            name = f"worker-{len(self.workers) + 1}"
            self.workers.append(self.bench.start_worker(self.database_url, name))

    def check_workers(self) -> None:
        for worker in self.workers:
            worker.check()

    def stop_workers(self) -> None:
        while self.workers:
            self.workers.pop().stop()


def flow_of(bench: Bench) -> Flow:
    """The run's flow, created on first use."""
    flow = bench.shared.get("flow")
    if flow is None:
        flow = bench.shared["flow"] = Flow(bench)
        bench.cleanups.append(flow.stop_workers)
    assert isinstance(flow, Flow)
    return flow


async def wait_for_deliveries(
    database_url: str, company_id: str, expected: int, within: float, check: Any = None
) -> dict[str, Any]:
    """Poll until ``expected`` deliveries of the company are finished (or time runs out).

    Returns the counts by status and the last completion time (time.time() seconds).
    """
    deadline = time.monotonic() + within
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as connection:
        while True:
            cursor = await connection.execute(
                BENCH_QUERIES["delivery_progress"], {"company_id": company_id}
            )
            rows = await cursor.fetchall()
            counts = {status: count for status, count, _ in rows}
            finished = sum(counts.get(status, 0) for status in ("SUCCEEDED", "FAILED", "CANCELLED"))
            if finished >= expected or time.monotonic() > deadline:
                last = max((at for _, _, at in rows if at is not None), default=None)
                return {
                    "counts": counts,
                    "finished": finished,
                    "last_completed": last,
                    "timed_out": finished < expected,
                }
            if check is not None:
                check()
            await asyncio.sleep(0.1)
