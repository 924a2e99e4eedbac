"""D: publish-to-receive latency at a steady rate, measured at the receiver.

Events are published on a fixed schedule (open loop: a slow publish never delays the
next one) through the in-process API while two ``webhooks worker`` processes deliver
them. The publisher notes ``time.time()`` as it sends each ``publishEvent``; the
receiver notes ``time.time()`` when the delivery has arrived; same machine, same clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from bench.flow import flow_of
from bench.stats import summary_ms
from bench.suite import Bench
from bench.tenants import GraphQLClient, create_company, in_process_api, publisher_key, subscribe

PREFIX = "latency-"


async def run(bench: Bench) -> dict[str, Any]:
    flow = flow_of(bench)
    flow.ensure_workers(2)
    sizes = bench.sizes
    count = max(1, round(sizes.latency_seconds * sizes.latency_rate))
    sent: dict[str, float] = {}
    returned: dict[str, float] = {}
    async with in_process_api(flow.settings) as (services, http):
        client = GraphQLClient(http, await publisher_key(services))
        company_id = await create_company(services, "d-latency")
        await subscribe(services, company_id, [bench.receiver.url("/record")])
        bench.receiver.reset()

        async def publish(subject: str) -> None:
            sent[subject] = await client.publish(company_id, subject)
            returned[subject] = time.time()

        await publish_on_schedule(publish, PREFIX, count, sizes.latency_rate)
        arrivals = await first_arrivals(bench, PREFIX, count, within=30.0, poll=0.5)
    latencies = [arrivals[subject] - sent[subject] for subject in sent if subject in arrivals]
    result = {
        # publish sent -> delivery arrived: the target
        # publish sent -> publish answered: the API's share
        # publish answered -> delivery arrived: the queue's and the worker's share (the
        # delivery may even arrive first: the job starts at COMMIT, before the answer)
        "title": f"Publish-to-receive latency at {sizes.latency_rate:g} events/s (2 workers)",
        "events": count,
        "received": len(latencies),
        "rate": sizes.latency_rate,
        "latency": summary_ms(latencies),
        "publish_call": summary_ms([returned[subject] - sent[subject] for subject in sent]),
        "after_publish": summary_ms(
            [arrivals[subject] - returned[subject] for subject in sent if subject in arrivals]
        ),
    }
    bench.log(f"[bench] D latency {result['latency']}")
    return result


async def publish_on_schedule(
    publish: Callable[[str], Coroutine[Any, Any, None]], prefix: str, count: int, rate: float
) -> None:
    """Publish subjects ``prefix0`` .. ``prefix<count-1>`` at ``rate`` per second, each at
    its own time whatever the answers before it (an open loop), and wait for every call."""
    tasks: list[asyncio.Task[None]] = []
    start = time.monotonic() + 0.1
    for index in range(count):
        await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
        tasks.append(asyncio.create_task(publish(f"{prefix}{index}")))
    await asyncio.gather(*tasks)


async def first_arrivals(
    bench: Bench, prefix: str, count: int, within: float, poll: float = 0.25
) -> dict[str, float]:
    """First arrival time at the receiver of each event whose subject starts with
    ``prefix``, by subject: once ``count`` have arrived, or after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        first: dict[str, float] = {}
        for arrival, _, _, subject in bench.receiver.stats()["records"]:
            if subject and subject.startswith(prefix) and subject not in first:
                first[subject] = arrival
        if len(first) >= count or time.monotonic() > deadline:
            return first
        await asyncio.sleep(poll)
