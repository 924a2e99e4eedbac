"""G: fan-out cost. ``publishEvent`` latency, over HTTP to a real ``webhooks serve``, for a
company with 100 matching subscriptions: one event, 100 deliveries and 100 queued jobs
per call, in one transaction. Calls go one at a time; no worker runs meanwhile.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from bench.stats import summary_ms
from bench.suite import Bench, start_api
from bench.tenants import GraphQLClient, create_company, publisher_key, subscribe

COMPANY = "g-fanout"
WARM_UP = 5


async def run(bench: Bench) -> dict[str, Any]:
    from app.store.services import open_services

    sizes = bench.sizes
    database_url = bench.databases.create("fanout")
    settings = bench.settings(database_url)
    async with open_services(settings) as services:
        key = await publisher_key(services)
        await create_company(services, COMPANY)
        urls = [
            bench.receiver.url(f"/ok?subscription={index}")
            for index in range(sizes.fanout_subscriptions)
        ]
        await subscribe(services, COMPANY, urls)
    api, base_url = start_api(bench, database_url, "api-fanout")
    durations: list[float] = []
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            client = GraphQLClient(http, key)
            for index in range(WARM_UP + sizes.fanout_publishes):
                started = time.perf_counter()
                await client.publish(COMPANY, f"fanout-{index}")
                if index >= WARM_UP:
                    durations.append(time.perf_counter() - started)
    finally:
        api.stop()
    result = {
        "title": f"publishEvent latency, {sizes.fanout_subscriptions} matching subscriptions",
        "via": "HTTP to webhooks serve",
        "subscriptions": sizes.fanout_subscriptions,
        "publishes": len(durations),
        "latency": summary_ms(durations),
        # Which calls were slow tells a periodic stall (e.g. every n-th call) from noise.
        "slowest": [
            [index, round(durations[index] * 1000, 1)]
            for index in sorted(sorted(range(len(durations)), key=durations.__getitem__)[-5:])
        ],
    }
    bench.log(f"[bench] G publish latency {result['latency']}; slowest calls {result['slowest']}")
    return result
