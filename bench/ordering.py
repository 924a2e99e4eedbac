"""K: what ordering per subject costs. 100 subjects x 10 events each, published through
GraphQL ``publishEvent`` (the in-process ASGI app, as in C) to a company with 10
subscriptions, while two ``webhooks worker`` processes deliver them; the clock runs from
the first publish to the last delivery's ``completed_at``.

The same load goes to a company whose 10 subscriptions are unordered and to one whose 10
are PER_SUBJECT, in turns (unordered, ordered, ordered, unordered in the full run), in one
invocation. An ordered subject's deliveries go one at a time per subscription: each one
ends before the next is sent, so a subject's 10 events take 10 round trips in a row
instead of running side by side. Each event names its subject, the events of a subject
100 publishes apart (the publishers cycle through the subjects). For the ordered runs
the report also counts deliveries whose first attempt started before the previous one
of their subject had ended: always 0.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg

from app.core.delivery_ordering import DeliveryOrdering
from bench.flow import flow_of, wait_for_deliveries
from bench.queries import BENCH_QUERIES
from bench.stats import rate, summary_ms
from bench.suite import Bench
from bench.tenants import GraphQLClient, create_company, in_process_api, publisher_key, subscribe

WORKERS = 2


async def publish_subjects(
    client: GraphQLClient, company_id: str, subjects: int, events: int, publishers: int
) -> list[float]:
    """Event n of every subject, then n + 1 of every subject, ``publishers`` calls in
    flight; returns each call's duration in seconds."""
    plan = [f"{company_id}-order-{subject}" for _ in range(events) for subject in range(subjects)]
    plan.reverse()
    took: list[float] = []

    async def publisher() -> None:
        while plan:
            subject = plan.pop()
            started = time.perf_counter()
            await client.publish(company_id, subject)
            took.append(time.perf_counter() - started)

    await asyncio.gather(*(publisher() for _ in range(publishers)))
    return took


async def overtaken(database_url: str, company_id: str) -> int:
    """Deliveries first tried before the one numbered just before them had ended."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as connection:
        cursor = await connection.execute(
            BENCH_QUERIES["overtaken_deliveries"], {"company_id": company_id}
        )
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def run(bench: Bench) -> dict[str, Any]:
    flow = flow_of(bench)
    sizes = bench.sizes
    subjects, events, fanout = sizes.ordered_subjects, sizes.ordered_events, sizes.ordered_fanout
    turns = [DeliveryOrdering.NONE, DeliveryOrdering.PER_SUBJECT]
    if not sizes.smoke:
        turns += list(reversed(turns))
    runs = []
    async with in_process_api(flow.settings) as (services, http):
        client = GraphQLClient(http, await publisher_key(services))
        flow.ensure_workers(WORKERS)
        for turn, ordering in enumerate(turns):
            company_id = await create_company(services, f"k-{ordering.lower()}-{turn}")
            await subscribe(
                services,
                company_id,
                [bench.receiver.url(f"/ok?subscription={index}") for index in range(fanout)],
                ordering=ordering,
            )
            expected = subjects * events * fanout
            started = time.time()
            took = await publish_subjects(client, company_id, subjects, events, sizes.publishers)
            published = time.time()
            done = await wait_for_deliveries(
                flow.database_url,
                company_id,
                expected,
                within=120 + expected / 20,
                check=flow.check_workers,
            )
            seconds = (done["last_completed"] or time.time()) - started
            succeeded = done["counts"].get("SUCCEEDED", 0)
            runs.append(
                {
                    "ordering": str(ordering),
                    "workers": len(flow.workers),
                    "subjects": subjects,
                    "events": subjects * events,
                    "fanout": fanout,
                    "deliveries": expected,
                    "succeeded": succeeded,
                    "statuses": done["counts"],
                    "timed_out": done["timed_out"],
                    "seconds": round(seconds, 2),
                    "per_second": rate(succeeded, seconds),
                    "publish_events_per_second": rate(subjects * events, published - started),
                    "publish": summary_ms(took),
                    "overtaken": await overtaken(flow.database_url, company_id),
                }
            )
            bench.log(
                f"[bench] K {ordering}: {runs[-1]['per_second']} deliveries/s, publishEvent"
                f" p50 {runs[-1]['publish']['p50_ms']} ms, overtaken {runs[-1]['overtaken']}"
            )
    by_ordering = {
        ordering: [run for run in runs if run["ordering"] == ordering]
        for ordering in ("NONE", "PER_SUBJECT")
    }
    mean = {
        ordering: sum(run["per_second"] for run in found) / len(found)
        for ordering, found in by_ordering.items()
    }
    return {
        "title": "Ordered per subject against unordered (publishEvent via in-process ASGI)",
        "runs": runs,
        "ordered_share": round(mean["PER_SUBJECT"] / mean["NONE"], 2) if mean["NONE"] else None,
    }
