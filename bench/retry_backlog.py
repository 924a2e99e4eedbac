"""I: deliveries with a backlog of retries waiting, against none, in the same run.

A database of its own and one ``webhooks worker``. Twice, first with an empty queue and
then with ``backlog_retries`` delivery jobs scheduled an hour ahead (each with a lock of
its own, queued before everything measured: smaller ids, the default priority, as the
retries of failed attempts wait), the phase measures:

- a burst: ``backlog_events`` events published as fast as 8 publishers go (fan-out 1),
  first publish to last ``completed_at``, as in C;
- latency: events at ``backlog_rate`` per second for ``backlog_seconds``, publish sent
  to delivery arrived at the receiver, as in D;
- the idle fetch: ``EXPLAIN (ANALYZE, BUFFERS)`` of the worker's fetch function, rolled
  back, once nothing is due: what every poll of every worker costs.

The retries only wait: they come due after the phase. The fetch used to read every one
of them before each job it took (migration 0011).
"""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg

from bench.flow import wait_for_deliveries
from bench.latency import first_arrivals, publish_on_schedule
from bench.processes import Child
from bench.queries import BENCH_QUERIES
from bench.stats import rate, summary_ms
from bench.suite import Bench
from bench.tenants import GraphQLClient, create_company, in_process_api, publisher_key, subscribe
from bench.throughput import publish_many

PREFIX = "backlog-"


async def run(bench: Bench) -> dict[str, Any]:
    sizes = bench.sizes
    database_url = bench.databases.create("backlog")
    worker = bench.start_worker(database_url, "backlog-worker")
    runs = []
    try:
        async with in_process_api(bench.settings(database_url)) as (services, http):
            client = GraphQLClient(http, await publisher_key(services))
            for backlog in (0, sizes.backlog_retries):
                if backlog:
                    await _add_retries(database_url, backlog)
                company_id = await create_company(services, f"i-backlog-{backlog}")
                await subscribe(services, company_id, [bench.receiver.url("/record")])
                runs.append(await _measure(bench, client, database_url, worker, company_id))
                runs[-1]["retries_waiting"] = backlog
                bench.log(
                    f"[bench] I {backlog} retries waiting: burst {runs[-1]['per_second']}"
                    f" deliveries/s, latency {runs[-1]['latency']}, idle fetch"
                    f" {runs[-1]['idle_fetch_buffers']} buffers"
                )
    finally:
        worker.stop()
    return {
        "title": "Deliveries with retries waiting (1 worker, fan-out 1)",
        "runs": runs,
    }


async def _measure(
    bench: Bench, client: GraphQLClient, database_url: str, worker: Child, company_id: str
) -> dict[str, Any]:
    sizes = bench.sizes
    started = time.time()
    await publish_many(client, f"{company_id}", sizes.backlog_events, sizes.publishers)
    done = await wait_for_deliveries(
        database_url,
        company_id,
        sizes.backlog_events,
        within=120 + sizes.backlog_events / 20,
        check=worker.check,
    )
    seconds = (done["last_completed"] or time.time()) - started
    succeeded = done["counts"].get("SUCCEEDED", 0)

    bench.receiver.reset()
    count = max(1, round(sizes.backlog_seconds * sizes.backlog_rate))
    sent: dict[str, float] = {}
    prefix = f"{PREFIX}{company_id}-"

    async def publish(subject: str) -> None:
        sent[subject] = await client.publish(company_id, subject)

    await publish_on_schedule(publish, prefix, count, sizes.backlog_rate)
    arrivals = await first_arrivals(bench, prefix, count, within=30.0)
    return {
        "events": sizes.backlog_events,
        "succeeded": succeeded,
        "timed_out": done["timed_out"],
        "seconds": round(seconds, 2),
        "per_second": rate(succeeded, seconds),
        "rate": sizes.backlog_rate,
        "latency": summary_ms(
            [arrivals[subject] - sent[subject] for subject in sent if subject in arrivals]
        ),
        "idle_fetch_buffers": await _idle_fetch_buffers(database_url),
    }


async def _add_retries(database_url: str, count: int) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as connection:
        await connection.execute(BENCH_QUERIES["backlog_retries"], {"count": count})
        await connection.execute("ANALYZE procrastinate_jobs")


async def _idle_fetch_buffers(database_url: str) -> int:
    """Buffers one fetch reads when nothing is due (a plan made beforehand: the second
    of two calls), rolled back so that nothing is taken."""
    async with await psycopg.AsyncConnection.connect(database_url) as connection:
        buffers = 0
        for _ in range(2):
            cursor = await connection.execute(BENCH_QUERIES["bench_worker"])
            row = await cursor.fetchone()
            assert row is not None
            cursor = await connection.execute(BENCH_QUERIES["explain_fetch"], {"worker": row[0]})
            plan_row = await cursor.fetchone()
            await connection.rollback()
            assert plan_row is not None
            value = plan_row[0]
            plan = (value if isinstance(value, list) else json.loads(value))[0]["Plan"]
            buffers = int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"])
        return buffers
