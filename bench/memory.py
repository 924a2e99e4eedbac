"""H: worker memory. One ``webhooks worker --concurrency <deliveries>`` process delivers to
a receiver that takes its time, so every delivery is in flight at once; the peak resident
set (``VmHWM`` in ``/proc/<pid>/status``) is what a worker needs at that load.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.flow import flow_of, wait_for_deliveries
from bench.suite import Bench
from bench.tenants import GraphQLClient, create_company, in_process_api, publisher_key, subscribe

COMPANY = "h-memory"
FANOUT = 10


async def run(bench: Bench) -> dict[str, Any]:
    flow = flow_of(bench)
    flow.stop_workers()  # this phase's worker is alone
    sizes = bench.sizes
    events = max(1, sizes.memory_deliveries // FANOUT)
    deliveries = events * FANOUT
    worker = bench.start_worker(flow.database_url, "memory-worker", concurrency=deliveries)
    try:
        await asyncio.sleep(1.0)
        idle = worker.memory_kib()
        async with in_process_api(flow.settings) as (services, http):
            client = GraphQLClient(http, await publisher_key(services))
            await create_company(services, COMPANY)
            urls = [
                bench.receiver.url(f"/slow?ms={sizes.memory_delay_ms}&subscription={index}")
                for index in range(FANOUT)
            ]
            await subscribe(services, COMPANY, urls)
            bench.receiver.reset()
            started = time.time()
            for index in range(events):
                await client.publish(COMPANY, f"memory-{index}")
        done = await wait_for_deliveries(
            flow.database_url,
            COMPANY,
            deliveries,
            within=60 + sizes.memory_delay_ms / 1000 * 3,
            check=worker.check,
        )
        peak = worker.memory_kib()
        stats = bench.receiver.stats()
    finally:
        worker.stop()
    result = {
        "title": f"Worker peak RSS with {deliveries} deliveries in flight",
        "deliveries": deliveries,
        "concurrency": deliveries,
        "receiver_delay_ms": sizes.memory_delay_ms,
        "max_in_flight_at_receiver": stats["max_in_flight"],
        "statuses": done["counts"],
        "seconds": round((done["last_completed"] or time.time()) - started, 2),
        "idle_rss_mb": round(idle.get("VmRSS", 0) / 1024, 1),
        "peak_rss_mb": round(peak.get("VmHWM", 0) / 1024, 1),
    }
    bench.log(
        f"[bench] H peak RSS {result['peak_rss_mb']} MB "
        f"({result['max_in_flight_at_receiver']} in flight)"
    )
    return result
