"""G: fan-out cost. ``publishEvent`` latency, over HTTP to a real ``webhooks serve``, for a
company with 100 matching subscriptions: one event, 100 deliveries and 100 queued jobs
per call, in one transaction. Calls go one at a time; no worker runs meanwhile.

The same publishes go, interleaved one for one, to a second company whose 100
subscriptions each carry a content filter of the kinds subscribers write (statuses,
cities, services, nested logic), half of them matching: the fan-out then evaluates 100
filters and makes 50 deliveries. Its p99 is reported beside the unfiltered one, with
their ratio (the target: at most 1.5). A third company's 100 filters all match: 100
evaluations and the same 100 deliveries as the unfiltered company, which isolates what
evaluating costs. A fourth company's 100 subscriptions are ordered per subject: each
call also numbers its deliveries in 100 subject queues (every event has a subject of its
own here, so each call writes 100 new queue rows and sends every delivery at once: the
fan-out's extra work at its largest). All publish the catalogue's ORDER_STATUS sample.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from app.core.delivery_ordering import DeliveryOrdering
from bench.queries import BENCH_QUERIES
from bench.stats import summary_ms
from bench.suite import Bench, start_api
from bench.tenants import GraphQLClient, create_company, publisher_key, subscribe

COMPANY = "g-fanout"
FILTERED_COMPANY = "g-fanout-filtered"
MATCHING_COMPANY = "g-fanout-all-match"
ORDERED_COMPANY = "g-fanout-ordered"
COMPANIES = (COMPANY, FILTERED_COMPANY, MATCHING_COMPANY, ORDERED_COMPANY)
WARM_UP = 5
SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "catalogue" / "order_status.sample.json"

# Realistic filters: the first five pass the sample (a scheduled Denver photography
# order with a floor plan), the last five do not.
MATCHING: list[dict[str, Any]] = [
    {"order_status": {"$in": ["scheduled", "notified", "completed"]}},
    {"property_info.address.province": "CO", "order_status": {"$ne": "cancelled"}},
    {
        "$or": [
            {"primary_service.group_slug": "photography"},
            {"add_on_services.group_slug": "video"},
        ]
    },
    {"appointments.duration": {"$gte": 60}, "submitted_cancel_onsite": False},
    {"order_status": {"$nin": ["cancelled", "hold"]}, "property_info.address.city": "Denver"},
]
NOT_MATCHING: list[dict[str, Any]] = [
    {"order_status": "notified"},
    {"order_status": {"$in": ["completed", "cancelled"]}},
    {"property_info.address.city": "Boulder"},
    {"$and": [{"order_status": "scheduled"}, {"add_on_services.group_slug": "video"}]},
    {"$not": {"client.email": {"$exists": True}}},
]


def filters_for(company: str, count: int) -> list[dict[str, Any]] | None:
    """One filter per subscription of ``company``: none, matching and not in turn, or
    all matching."""
    if company in (COMPANY, ORDERED_COMPANY):
        return None
    cycle = (
        [item for pair in zip(MATCHING, NOT_MATCHING, strict=True) for item in pair]
        if company == FILTERED_COMPANY
        else MATCHING
    )
    return [cycle[index % len(cycle)] for index in range(count)]


async def run(bench: Bench) -> dict[str, Any]:
    from app.store.services import open_services

    sizes = bench.sizes
    payload = json.loads(SAMPLE.read_text(encoding="utf-8"))
    database_url = bench.databases.create("fanout")
    settings = bench.settings(database_url)
    async with open_services(settings) as services:
        key = await publisher_key(services)
        for company in COMPANIES:
            await create_company(services, company)
            urls = [
                bench.receiver.url(f"/ok?company={company}&subscription={index}")
                for index in range(sizes.fanout_subscriptions)
            ]
            await subscribe(
                services,
                company,
                urls,
                filters_for(company, sizes.fanout_subscriptions),
                ordering=(
                    DeliveryOrdering.PER_SUBJECT
                    if company == ORDERED_COMPANY
                    else DeliveryOrdering.NONE
                ),
            )
    api, base_url = start_api(bench, database_url, "api-fanout")
    durations: dict[str, list[float]] = {company: [] for company in COMPANIES}
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            client = GraphQLClient(http, key)
            for index in range(WARM_UP + sizes.fanout_publishes):
                # Rotating which goes first, so none gains from another's warm-up.
                shift = index % len(COMPANIES)
                for company in COMPANIES[shift:] + COMPANIES[:shift]:
                    started = time.perf_counter()
                    await client.publish(company, f"fanout-{index}", payload)
                    if index >= WARM_UP:
                        durations[company].append(time.perf_counter() - started)
    finally:
        api.stop()
    result = _section(sizes.fanout_subscriptions, durations[COMPANY])
    async with open_services(settings) as services:
        for company, name in ((FILTERED_COMPANY, "filtered"), (MATCHING_COMPANY, "all_matching")):
            filters = filters_for(company, sizes.fanout_subscriptions) or []
            delivered = await _deliveries(services, company)
            section = _section(sizes.fanout_subscriptions, durations[company])
            result[name] = {
                **section,
                "title": f"publishEvent latency, {len(filters)} subscriptions with content filters",
                "matching": sum(_matches(document, payload) for document in filters),
                "deliveries_per_publish": delivered / (WARM_UP + sizes.fanout_publishes),
            }
            result[f"{name}_p99_ratio"] = round(
                section["latency"]["p99_ms"] / result["latency"]["p99_ms"], 2
            )
    ordered = _section(sizes.fanout_subscriptions, durations[ORDERED_COMPANY])
    result["ordered"] = {
        **ordered,
        "title": f"publishEvent latency, {sizes.fanout_subscriptions} subscriptions ordered "
        "per subject (a new subject each call)",
    }
    for quantile in ("p50_ms", "p99_ms"):
        result[f"ordered_{quantile[:3]}_ratio"] = round(
            ordered["latency"][quantile] / result["latency"][quantile], 2
        )
    bench.log(
        f"[bench] G publish latency {result['latency']}; slowest calls {result['slowest']}; "
        f"half the filters matching {result['filtered']['latency']} "
        f"(p99 ratio {result['filtered_p99_ratio']}); every filter matching "
        f"{result['all_matching']['latency']} (p99 ratio {result['all_matching_p99_ratio']}); "
        f"ordered per subject {result['ordered']['latency']}"
    )
    return result


def _section(subscriptions: int, durations: list[float]) -> dict[str, Any]:
    return {
        "title": f"publishEvent latency, {subscriptions} matching subscriptions",
        "via": "HTTP to webhooks serve",
        "subscriptions": subscriptions,
        "publishes": len(durations),
        "latency": summary_ms(durations),
        # Which calls were slow tells a periodic stall (e.g. every n-th call) from noise.
        "slowest": [
            [index, round(durations[index] * 1000, 1)]
            for index in sorted(sorted(range(len(durations)), key=durations.__getitem__)[-5:])
        ],
    }


def _matches(document: dict[str, Any], payload: dict[str, Any]) -> bool:
    from app.core.filter_verdict import judge
    from app.core.payload_filter import parse_filter

    parsed, errors = parse_filter(("filter",), document)
    if parsed is None:
        raise ValueError(f"a benchmark filter is refused: {errors}")
    return judge(parsed, payload).matched


async def _deliveries(services: Any, company_id: str) -> int:
    async with services.db.pool.connection() as connection:
        cursor = await connection.execute(
            BENCH_QUERIES["delivery_progress"], {"company_id": company_id}
        )
        return sum(count for _, count, _ in await cursor.fetchall())
