"""J: what the plain-leaf executor (schema/execution.py) saves. The API process's CPU per
``deliveries(first: 50)`` with attempts (phase F's page) and per ``publishEvent`` (10
matching subscriptions), over HTTP to a real ``webhooks serve`` started with
``WEBHOOKS_FAST_EXECUTION`` on, then off, then on and off again (the smoke run: one
round): each round's two servers run back to back, so a change of the shared machine's
load shows as a difference between rounds, not as the executor's.
"""

from __future__ import annotations

from statistics import mean
from typing import Any

import httpx

from bench.api_scale import LIST, generate
from bench.cpu import process_seconds
from bench.suite import Bench, start_api
from bench.tenants import GraphQLClient, company_key, create_company, publisher_key, subscribe

COMPANIES = 10
MAX_ROWS = 20_000  # enough for full pages with attempts; phase F measures the scale
PUBLISHED_TO = "j-publish"
SUBSCRIPTIONS = 10
WARM_UP = 10


async def _cpu_ms_per_call(api_pid: int, calls: int, call: Any) -> float:
    """The API process's CPU milliseconds per ``await call(index)`` after the warm-up."""
    for index in range(WARM_UP):
        await call(index)
    started = process_seconds(api_pid)
    for index in range(WARM_UP, WARM_UP + calls):
        await call(index)
    return round((process_seconds(api_pid) - started) * 1000 / calls, 2)


async def _measure(bench: Bench, database_url: str, keys: tuple[str, str], fast: bool) -> Any:
    company, publisher = keys
    switch = "on" if fast else "off"
    api, base_url = start_api(
        bench, database_url, f"api-executor-{switch}", WEBHOOKS_FAST_EXECUTION=switch
    )
    calls = bench.sizes.api_requests
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            reader = GraphQLClient(http, company)
            writer = GraphQLClient(http, publisher)

            async def page(_: int) -> None:
                await reader.data(LIST)

            async def publish(index: int) -> None:
                await writer.publish(PUBLISHED_TO, f"executor-{switch}-{index}")

            return {
                "fast_execution": fast,
                "deliveries_first_50_cpu_ms": await _cpu_ms_per_call(api.pid, calls, page),
                "publish_event_cpu_ms": await _cpu_ms_per_call(api.pid, calls, publish),
            }
    finally:
        api.stop()


def _saved(runs: list[dict[str, Any]], measure: str) -> dict[str, Any]:
    """The mean CPU per call with the executor on and off, and the share of the stock
    executor's CPU that it saves, over all rounds and round by round."""
    on = [run[measure] for run in runs if run["fast_execution"]]
    off = [run[measure] for run in runs if not run["fast_execution"]]
    return {
        "on_cpu_ms": round(mean(on), 2),
        "off_cpu_ms": round(mean(off), 2),
        "saved_share": round(1 - mean(on) / mean(off), 3),
        "saved_share_per_round": [round(1 - a / b, 3) for a, b in zip(on, off, strict=True)],
    }


async def run(bench: Bench) -> dict[str, Any]:
    from app.store.services import open_services

    rows = min(bench.sizes.scale_rows, MAX_ROWS)
    database_url = bench.databases.create("executor")
    generate(database_url, rows, COMPANIES)
    async with open_services(bench.settings(database_url)) as services:
        keys = (await company_key(services, "scale-001"), await publisher_key(services))
        await create_company(services, PUBLISHED_TO)
        await subscribe(
            services,
            PUBLISHED_TO,
            [bench.receiver.url(f"/ok?executor={index}") for index in range(SUBSCRIPTIONS)],
        )
    runs = [
        await _measure(bench, database_url, keys, fast)
        for _ in range(bench.sizes.executor_rounds)
        for fast in (True, False)
    ]
    result = {
        "title": "plain-leaf executor: API CPU per call, WEBHOOKS_FAST_EXECUTION on and off",
        "via": "HTTP to webhooks serve",
        "rows": rows,
        "calls": bench.sizes.api_requests,
        "runs": runs,
        "deliveries_first_50": _saved(runs, "deliveries_first_50_cpu_ms"),
        "publish_event": _saved(runs, "publish_event_cpu_ms"),
    }
    bench.log(
        f"[bench] J executor saves {result['deliveries_first_50']} of a page, "
        f"{result['publish_event']} of a publish"
    )
    return result
