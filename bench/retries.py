"""E: retry punctuality. The receiver fails every first attempt; each delivery's second
attempt is due ``WEBHOOKS_RETRY_INTERVAL_SECONDS`` after the first one ended.

Lateness, from the attempt rows: attempt 2 ``started_at`` minus (attempt 1 ``started_at``
+ its ``duration_ms`` + the interval). The worker wakes when a scheduled job comes due
(its empty fetch tells when), not only every ``WEBHOOKS_POLL_INTERVAL_SECONDS``. The
receiver's own arrival times give a second opinion.

Then the price of that, idle: the two workers with nothing due (one job scheduled an
hour ahead, so that each empty fetch looks it up), and the transactions PostgreSQL
committed in the flow's database over ``idle_seconds`` (``pg_stat_database.xact_commit``;
the worker runs every statement in autocommit, so one a statement), per second.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg

from bench import statement_counts
from bench.flow import flow_of, wait_for_deliveries
from bench.queries import BENCH_QUERIES
from bench.stats import summary_ms
from bench.suite import Bench
from bench.tenants import GraphQLClient, create_company, in_process_api, publisher_key, subscribe

COMPANY = "e-retries"


async def run(bench: Bench) -> dict[str, Any]:
    flow = flow_of(bench)
    flow.ensure_workers(2)
    sizes = bench.sizes
    async with in_process_api(flow.settings) as (services, http):
        client = GraphQLClient(http, await publisher_key(services))
        await create_company(services, COMPANY)
        await subscribe(services, COMPANY, [bench.receiver.url("/fail-first")])
        bench.receiver.reset()
        start = time.monotonic()
        tasks = []
        for index in range(sizes.retry_events):
            await asyncio.sleep(max(0.0, start + index / sizes.retry_rate - time.monotonic()))
            tasks.append(asyncio.create_task(client.publish(COMPANY, f"retry-{index}")))
        await asyncio.gather(*tasks)
    done = await wait_for_deliveries(
        flow.database_url,
        COMPANY,
        sizes.retry_events,
        within=60 + sizes.retry_events / 10,
        check=flow.check_workers,
    )
    async with await psycopg.AsyncConnection.connect(flow.database_url) as connection:
        cursor = await connection.execute(
            BENCH_QUERIES["retry_lateness"],
            {"interval": sizes.retry_interval, "company_id": COMPANY},
        )
        lateness = [row[0] for row in await cursor.fetchall()]
    idle = await _idle_load(flow.database_url, bench.sizes.idle_seconds, len(flow.workers))
    result = {
        "title": f"Retry punctuality (interval {sizes.retry_interval:g} s, 2 workers)",
        "interval_seconds": sizes.retry_interval,
        "poll_interval_seconds": flow.settings.poll_interval_seconds,
        "deliveries": sizes.retry_events,
        "statuses": done["counts"],
        "lateness": summary_ms(lateness),
        "lateness_at_receiver": summary_ms(_receiver_lateness(bench, sizes.retry_interval)),
        "idle": idle,
    }
    bench.log(f"[bench] E lateness {result['lateness']}, idle {idle}")
    return result


async def _idle_load(database_url: str, seconds: float, workers: int) -> dict[str, Any]:
    """What the idle workers ask PostgreSQL per second, one job scheduled an hour ahead:
    transactions committed, and statements by text where pg_stat_statements is loaded."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as connection:
        await connection.execute(BENCH_QUERIES["park_far_job"])
        # Let the workers see it and PostgreSQL flush what came before (at most 1 s late).
        await asyncio.sleep(2.0)
        unavailable = await asyncio.to_thread(statement_counts.unavailable, database_url)  # resets
        before = await _committed(connection)
        started = time.monotonic()
        await asyncio.sleep(seconds)
        after = await _committed(connection)
        elapsed = time.monotonic() - started
        counted = (
            [] if unavailable else await asyncio.to_thread(statement_counts.counted, database_url)
        )
        counted = [row for row in counted if "pg_stat_database" not in row[0]]
        await connection.execute(BENCH_QUERIES["drop_far_job"])
    per_second = (after - before - 1) / elapsed  # less this connection's own reading
    result: dict[str, Any] = {
        "seconds": round(elapsed, 1),
        "workers": workers,
        "transactions_per_second": round(per_second, 2),
        "per_worker": round(per_second / max(1, workers), 2),
    }
    if unavailable:
        result["statements_skipped"] = unavailable
    else:
        calls = sum(count for _, count, _ in counted)
        result["statements_per_second"] = round(calls / elapsed, 2)
        result["top_statements"] = [
            {"calls_per_second": round(count / elapsed, 2), "query": " ".join(query.split())[:120]}
            for query, count, _ in counted[:6]
        ]
    return result


async def _committed(connection: psycopg.AsyncConnection[Any]) -> int:
    cursor = await connection.execute(BENCH_QUERIES["transactions_committed"])
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


def _receiver_lateness(bench: Bench, interval: float) -> list[float]:
    """Arrival of attempt 2 minus (arrival of attempt 1 + interval), per webhook-id."""
    arrivals: dict[tuple[str, int], float] = {}
    for arrival, webhook_id, attempt, _ in bench.receiver.stats()["records"]:
        arrivals.setdefault((webhook_id, attempt), arrival)
    return [
        arrivals[(webhook_id, 2)] - arrivals[(webhook_id, 1)] - interval
        for webhook_id, attempt in arrivals
        if attempt == 1 and (webhook_id, 2) in arrivals
    ]
