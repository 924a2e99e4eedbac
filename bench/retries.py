"""E: retry punctuality. The receiver fails every first attempt; each delivery's second
attempt is due ``WEBHOOKS_RETRY_INTERVAL_SECONDS`` after the first one ended.

Lateness, from the attempt rows: attempt 2 ``started_at`` minus (attempt 1 ``started_at``
+ its ``duration_ms`` + the interval). Scheduled jobs are found by polling
(``WEBHOOKS_POLL_INTERVAL_SECONDS``), so that interval bounds the lateness from below.
The receiver's own arrival times give a second opinion.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg

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
    result = {
        "title": f"Retry punctuality (interval {sizes.retry_interval:g} s, 2 workers)",
        "interval_seconds": sizes.retry_interval,
        "poll_interval_seconds": flow.settings.poll_interval_seconds,
        "deliveries": sizes.retry_events,
        "statuses": done["counts"],
        "lateness": summary_ms(lateness),
        "lateness_at_receiver": summary_ms(_receiver_lateness(bench, sizes.retry_interval)),
    }
    bench.log(f"[bench] E lateness {result['lateness']}")
    return result


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
