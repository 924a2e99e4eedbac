"""One benchmark run: the shared state of the phases, and the order they run in.

Phases, all in one invocation so that their ratios hold on a noisy machine:

- A  HTTP ceiling: ``Transport.send`` POSTs/s to the receiver (1 and 2 processes)
- B  queue ceiling: Procrastinate no-op jobs/s with the worker's settings (1 and 2),
     and stock Procrastinate (its own schema and worker defaults) beside it
- C  end-to-end deliveries/s: publishEvent (in-process ASGI app) until SUCCEEDED,
     fan-out 1 and 10, 1 and 2 ``webhooks worker`` processes
     (and fan-out 1 published by publishEvents in batches of 100)
- S  SQL statements per first-attempt delivery on the worker's side (pg_stat_statements)
- D  publish-to-receive latency at a steady 50 events/s, measured at the receiver
- E  retry punctuality: lateness of attempt 2 against its due time
- F  API latency over 1,000,000 deliveries (``webhooks serve`` over HTTP), with EXPLAIN
- G  publishEvent latency with 100 matching subscriptions (``webhooks serve``), and with
     100 content-filtered ones (half matching; all matching)
- H  peak RSS of a worker with 1,000 deliveries in flight to a slow receiver
- I  burst throughput and latency with 20,000 retries waiting, against none
- J  the plain-leaf executor's share of the API's CPU (``WEBHOOKS_FAST_EXECUTION`` on/off)
- K  ordered delivery per subject: 100 subjects x 10 events at fan-out 10, ordered and
     unordered subscriptions in turns, 2 workers
- L  the portal's delivery log in headless Chromium over F's deliveries: a portal link
     opened until the first row shows (``webhooks serve``)
- N  C again with the worker in a network namespace, PostgreSQL across a veth pair, with
     and without 0.5 ms of delay each way (``tc netem``); skipped where not allowed
- T  tracing's cost: C (fan-out 1 and 10) and D with tracing off, on, off, on, 2 workers

At most four busy processes at a time (driver, receiver, two workers; or driver,
receiver, API server), plus PostgreSQL.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from app.core import event_loop
from app.core.secret_box import generate_key
from app.core.settings import Settings
from bench.config import Sizes
from bench.database import BenchDatabases
from bench.processes import WEBHOOKS, Child, Receiver, environment, free_port
from bench.queries import BENCH_QUERIES
from bench.tenants import PAYLOAD_JSON

Result = dict[str, Any]


@dataclass
class Bench:
    """What every phase shares: sizes, the work directory, databases and the receiver."""

    sizes: Sizes
    work_dir: Path
    databases: BenchDatabases
    receiver: Receiver
    secret_key: str = field(default_factory=generate_key)
    results: dict[str, Result] = field(default_factory=dict)
    # State some phases share (the delivery flow), and what stops it at the end.
    shared: dict[str, Any] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    log: Callable[[str], None] = print

    def service_env(self, database_url: str, **variables: str) -> dict[str, str]:
        """Environment of ``webhooks`` processes: defaults except what a benchmark needs."""
        return environment(
            WEBHOOKS_DATABASE_URL=database_url,
            WEBHOOKS_SECRET_KEY=self.secret_key,
            WEBHOOKS_DATA_DIR=str(self.work_dir / "data"),
            # The receiver listens on loopback, which only this opens.
            WEBHOOKS_ALLOWED_NETWORKS="127.0.0.0/8",
            # One PUBLISHER key publishes everything: the per-key rate limit is off.
            WEBHOOKS_RATE_LIMIT_PER_SECOND="0",
            WEBHOOKS_RETRY_INTERVAL_SECONDS=f"{self.sizes.retry_interval:g}",
            **variables,
        )

    def settings(self, database_url: str, **variables: str) -> Settings:
        """The same settings, for the driver's own in-process services."""
        return Settings.from_env(self.service_env(database_url, **variables))

    def start_worker(self, database_url: str, name: str, concurrency: int | None = None) -> Child:
        """A real ``webhooks worker`` process, returned once it has registered."""
        argv = [WEBHOOKS, "worker"]
        if concurrency is not None:
            argv += ["--concurrency", str(concurrency)]
        child = Child(name, argv, self.service_env(database_url), self.work_dir / f"{name}.log")
        wait_for_workers(database_url, child, expected=None)
        return child


def wait_for_workers(database_url: str, child: Child, expected: int | None) -> None:
    """Wait until Procrastinate lists one more worker (or ``expected`` workers)."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        count = _worker_count(connection)
        target = expected if expected is not None else count + 1
        deadline = time.monotonic() + 60
        while _worker_count(connection) < target:
            child.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} did not register\n{child.tail()}")
            time.sleep(0.05)


def _worker_count(connection: psycopg.Connection[Any]) -> int:
    row = connection.execute(BENCH_QUERIES["worker_count"]).fetchone()
    return int(row[0]) if row else 0


Phase = Callable[[Bench], Awaitable[Result]]


async def run_suite(sizes: Sizes, phases: list[str], output_dir: Path) -> Result:
    """Run the chosen phases in order; returns the whole report (also written as JSON)."""
    from bench import (
        api_scale,
        executor_share,
        fanout,
        http_ceiling,
        latency,
        memory,
        network,
        ordering,
        portal_render,
        queue_ceiling,
        report,
        retries,
        retry_backlog,
        statements,
        throughput,
        tracing_cost,
    )

    order: dict[str, Phase] = {
        "A": http_ceiling.run,
        "B": queue_ceiling.run,
        "C": throughput.run,
        "S": statements.run,
        "D": latency.run,
        "E": retries.run,
        "H": memory.run,
        "G": fanout.run,
        "F": api_scale.run,
        "I": retry_backlog.run,
        "J": executor_share.run,
        "K": ordering.run,
        "L": portal_render.run,
        "N": network.run,
        "T": tracing_cost.run,
    }
    started = datetime.now(UTC)
    clock = time.monotonic()
    work_dir = Path(tempfile.mkdtemp(prefix="webhooks-bench-"))
    failed = True
    databases = BenchDatabases(work_dir)
    try:
        databases.start()
        with Receiver(work_dir / "receiver.log") as receiver:
            bench = Bench(sizes=sizes, work_dir=work_dir, databases=databases, receiver=receiver)
            try:
                for name, phase in order.items():
                    if name not in phases:
                        continue
                    phase_clock = time.monotonic()
                    load_before = os.getloadavg()[0]
                    bench.log(f"[bench] phase {name} ...")
                    bench.results[name] = await phase(bench)
                    seconds = round(time.monotonic() - phase_clock, 1)
                    bench.results[name]["phase_seconds"] = seconds
                    # The machine's 1-minute load average around the phase: on a shared
                    # box it says how much of the 2 cores the benchmark really had.
                    bench.results[name]["load_average"] = [
                        round(load_before, 2),
                        round(os.getloadavg()[0], 2),
                    ]
                    bench.log(f"[bench] phase {name} done in {seconds} s")
            finally:
                for cleanup in reversed(bench.cleanups):
                    cleanup()
            data = {
                "started_at": started.isoformat(timespec="seconds"),
                "duration_seconds": round(time.monotonic() - clock, 1),
                "mode": "smoke" if sizes.smoke else "full",
                "command": "python -m bench " + " ".join(sys.argv[1:]),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "postgresql": databases.server_version(),
                    "database": databases.source,
                },
                "sizes": {
                    name: value for name, value in vars(sizes).items() if not name.startswith("_")
                },
                # Every phase that publishes or delivers uses this payload: its size
                # moves the figures, so the report says it.
                "payload_bytes": len(PAYLOAD_JSON),
                "sections": bench.results,
            }
            data["targets"] = report.targets(bench.results)
        failed = False
    finally:
        databases.close()
        if failed:
            print(f"[bench] failed; logs kept in {work_dir}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    report.write(data, output_dir)
    print(report.table(data))
    return data


def run(sizes: Sizes, phases: list[str], output_dir: Path) -> Result:
    return event_loop.run(run_suite(sizes, phases, output_dir))


def start_api(bench: Bench, database_url: str, name: str, **variables: str) -> tuple[Child, str]:
    """A real ``webhooks serve`` process on a free loopback port, once /readyz is green."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    child = Child(
        name,
        [WEBHOOKS, "serve", "--host", "127.0.0.1", "--port", str(port)],
        # Portal links are built on the public URL, not on --port.
        bench.service_env(database_url, WEBHOOKS_PUBLIC_URL=base_url, **variables),
        bench.work_dir / f"{name}.log",
        base_url,
    )
    try:
        child.wait_for_http("/readyz")
    except BaseException:
        child.stop()
        raise
    return child, base_url
