"""C: end-to-end deliveries per second.

N events are published through GraphQL ``publishEvent`` (the real ASGI app, in the driver
process, without a socket) by a few concurrent publishers, while ``webhooks worker``
processes deliver them to the receiver; the clock runs from the first publish to the
last delivery's ``completed_at``. Fan-out 1 (N events) and 10 (N/4 events, so 2.5 N
deliveries: the run stays within its time budget), with 1 then 2 worker processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from app.store.services import Services
from bench import batch_modes, statement_counts
from bench.cpu import CpuMeter
from bench.flow import flow_of, wait_for_deliveries
from bench.processes import Child
from bench.stats import rate
from bench.suite import Bench
from bench.tenants import GraphQLClient, create_company, in_process_api, publisher_key, subscribe

# Events per publishEvents call in the batched runs: the most one call takes.
BATCH = 100


async def publish_many(
    client: GraphQLClient, company_id: str, count: int, publishers: int, batch: int = 1
) -> None:
    """Publish ``count`` events with ``publishers`` calls in flight, ``batch`` events per
    call (1: publishEvent; more: publishEvents)."""
    remaining = count

    async def publisher() -> None:
        nonlocal remaining
        while remaining > 0:
            taken = min(batch, remaining)
            remaining -= taken
            subjects = [f"{company_id}-{remaining + index}" for index in range(taken)]
            if batch == 1:
                await client.publish(company_id, subjects[0])
            else:
                await client.publish_batch(company_id, subjects)

    await asyncio.gather(*(publisher() for _ in range(publishers)))


async def measure(
    bench: Bench,
    services: Services,
    client: GraphQLClient,
    database_url: str,
    workers: list[Child],
    fanout: int,
    company_id: str,
    check: Callable[[], None] | None = None,
    batch: int = 1,
) -> dict[str, Any]:
    """One run: a company subscribed ``fanout`` times, its events published (N at fan-out
    1, N/4 at fan-out 10), ``batch`` per call, until every delivery is finished; rates
    and CPU per delivery."""
    sizes = bench.sizes
    await create_company(services, company_id)
    await subscribe(
        services,
        company_id,
        [bench.receiver.url(f"/ok?subscription={index}") for index in range(fanout)],
    )
    events = sizes.events if fanout == 1 else max(1, sizes.events // 4)
    expected = events * fanout
    meter = CpuMeter(
        {"workers": [worker.pid for worker in workers], "receiver": [bench.receiver.pid]},
        bench.databases.postmaster_pid(),
    )
    counting = statement_counts.unavailable(database_url) is None  # also resets the counts
    meter.start()
    started = time.time()
    await publish_many(client, company_id, events, sizes.publishers, batch)
    published = time.time()
    done = await wait_for_deliveries(
        database_url, company_id, expected, within=120 + expected / 20, check=check
    )
    seconds = (done["last_completed"] or time.time()) - started
    cpu = meter.stop()
    counted = statement_counts.counted(database_url) if counting else []
    return {
        "workers": len(workers),
        "fanout": fanout,
        "publish_batch": batch,
        "events": events,
        "deliveries": expected,
        "succeeded": done["counts"].get("SUCCEEDED", 0),
        "statuses": done["counts"],
        "timed_out": done["timed_out"],
        "seconds": round(seconds, 2),
        "per_second": rate(done["counts"].get("SUCCEEDED", 0), seconds),
        "publish_seconds": round(published - started, 2),
        "publish_events_per_second": rate(events, published - started),
        # CPU seconds of each group over the run, and per delivery in ms: where the
        # machine's cores went.
        "cpu_seconds": cpu,
        "cpu_ms_per_delivery": {
            name: round(used * 1000 / expected, 2) for name, used in cpu.items() if name != "wall"
        },
        # Every statement of the run (publishing and delivering) and the workers' fetches,
        # per delivery, where pg_stat_statements is loaded: what batching the fetch saves.
        **(
            {
                "statements_per_delivery": round(sum(c for _, c, _ in counted) / expected, 2),
                "fetches_per_delivery": round(
                    sum(c for query, c, _ in counted if statement_counts.is_fetch(query))
                    / expected,
                    3,
                ),
            }
            if counted
            else {}
        ),
    }


async def run(bench: Bench) -> dict[str, Any]:
    flow = flow_of(bench)
    runs = []
    async with in_process_api(flow.settings) as (services, http):
        client = GraphQLClient(http, await publisher_key(services))
        # Fan-out 1 is bound by publishing; its batched run (one worker) says how far
        # publishEvents moves that bound.
        shapes = [(1, 1, 1), (1, 10, 1), (1, 1, BATCH), (2, 1, 1), (2, 10, 1)]
        for workers, fanout, batch in shapes:
            flow.ensure_workers(workers)
            suffix = "" if batch == 1 else f"-batch{batch}"
            runs.append(
                await measure(
                    bench,
                    services,
                    client,
                    flow.database_url,
                    flow.workers,
                    fanout,
                    f"c-fanout{fanout}-workers{workers}{suffix}",
                    check=flow.check_workers,
                    batch=batch,
                )
            )
            bench.log(
                f"[bench] C fan-out {fanout}, {workers} worker(s), batch {batch}: "
                f"{runs[-1]['per_second']} deliveries/s "
                f"(publishing {runs[-1]['publish_events_per_second']} events/s)"
            )
    # Not on the flow's database: its workers would deliver what this publishes.
    modes_url = bench.databases.create("batch_modes")
    async with in_process_api(bench.settings(modes_url)) as (services, _):
        modes = await batch_modes.compare(services, bench.receiver.url("/ok"))
    bench.log(f"[bench] C publishEvents atomicity: {modes['events_per_second']} events/s")
    return {
        "title": "End-to-end deliveries/s (publishEvent via in-process ASGI -> SUCCEEDED)",
        "publish_batch_modes": modes,
        "publish_via": "in-process ASGI app (Starlette + Strawberry, no socket)",
        "runs": runs,
    }
