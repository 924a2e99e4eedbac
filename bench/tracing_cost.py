"""T: what tracing costs. Phases C (fan-out 1 and 10) and D (50 events/s), 2 workers,
with tracing off, on, off, on (in turns, so a change of the shared machine's load shows
as a difference between rounds, not as tracing's).

Off is the service as it runs with no ``OTEL_*`` variable set. On, the driver's
in-process API and both ``webhooks worker`` processes export every span over OTLP/HTTP
(batch processor, the SDK's defaults) to the benchmark's receiver, which answers
``/v1/traces`` with 200 and throws the spans away; the report counts the export requests
it got, so a run whose spans went nowhere shows. Each turn has its own database and
workers.
"""

from __future__ import annotations

import time
from statistics import mean
from typing import Any

from app.core import tracing
from bench.latency import first_arrivals, publish_on_schedule
from bench.processes import WEBHOOKS, Child
from bench.stats import summary_ms
from bench.suite import Bench, wait_for_workers
from bench.tenants import GraphQLClient, create_company, in_process_api, publisher_key, subscribe
from bench.throughput import measure

TURNS = (False, True, False, True)
WORKERS = 2


def otel_env(bench: Bench) -> dict[str, str]:
    """The variables that turn tracing on, exporting to the receiver."""
    return {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": bench.receiver.url("/v1/traces"),
        "OTEL_SERVICE_NAME": "planomatic-webhooks-bench",
    }


async def _turn(bench: Bench, index: int, traced: bool) -> dict[str, Any]:
    label = f"{'on' if traced else 'off'}-{index}"
    database_url = bench.databases.create(f"tracing_{index}")
    variables = otel_env(bench) if traced else {}
    workers: list[Child] = []
    if traced:
        tracing.start_tracing("bench", variables)
    exports_before = bench.receiver.stats().get("otlp_requests", 0)
    try:
        for number in range(WORKERS):
            child = Child(
                f"worker-tracing-{label}-{number}",
                [WEBHOOKS, "worker"],
                bench.service_env(database_url, **variables),
                bench.work_dir / f"worker-tracing-{label}-{number}.log",
            )
            workers.append(child)
            wait_for_workers(database_url, child, expected=None)
        settings = bench.settings(database_url)
        async with in_process_api(settings) as (services, http):
            client = GraphQLClient(http, await publisher_key(services))
            throughput = []
            for fanout in (1, 10):
                measured = await measure(
                    bench,
                    services,
                    client,
                    database_url,
                    workers,
                    fanout,
                    f"t-{label}-fanout{fanout}",
                )
                throughput.append(
                    {
                        key: measured[key]
                        for key in ("fanout", "deliveries", "succeeded", "per_second")
                    }
                    | {"cpu_ms_per_delivery": measured["cpu_ms_per_delivery"]}
                )
            latency = await _latency(bench, services, client, label)
    finally:
        for worker in workers:
            worker.stop()
        if traced:
            tracing.stop_tracing()
    exports = bench.receiver.stats().get("otlp_requests", 0) - exports_before
    result = {"tracing": traced, "throughput": throughput, **latency, "otlp_requests": exports}
    bench.log(
        f"[bench] T tracing {label}: "
        + ", ".join(f"fan-out {run['fanout']} {run['per_second']}/s" for run in throughput)
        + f"; D p50 {latency['latency']['p50_ms']} ms; {exports} OTLP requests"
    )
    return result


async def _latency(
    bench: Bench, services: Any, client: GraphQLClient, label: str
) -> dict[str, Any]:
    """Phase D's measurement: a steady stream, publish sent to delivery received."""
    sizes = bench.sizes
    count = max(1, round(sizes.latency_seconds * sizes.latency_rate / 2))
    prefix = f"tracing-{label}-"
    company_id = await create_company(services, f"t-{label}-latency")
    await subscribe(services, company_id, [bench.receiver.url("/record")])
    sent: dict[str, float] = {}
    returned: dict[str, float] = {}

    async def publish(subject: str) -> None:
        sent[subject] = await client.publish(company_id, subject)
        returned[subject] = time.time()

    await publish_on_schedule(publish, prefix, count, sizes.latency_rate)
    arrivals = await first_arrivals(bench, prefix, count, within=30.0, poll=0.5)
    return {
        "events": count,
        "received": len(arrivals),
        "latency": summary_ms([arrivals[s] - sent[s] for s in sent if s in arrivals]),
        "publish_call": summary_ms([returned[s] - sent[s] for s in sent]),
    }


def _averaged(turns: list[dict[str, Any]], traced: bool) -> dict[str, Any]:
    chosen = [turn for turn in turns if turn["tracing"] is traced]
    by_fanout: dict[str, Any] = {}
    for fanout in (1, 10):
        runs = [run for turn in chosen for run in turn["throughput"] if run["fanout"] == fanout]
        by_fanout[str(fanout)] = {
            "per_second": round(mean(run["per_second"] for run in runs), 1),
            "worker_cpu_ms": round(mean(run["cpu_ms_per_delivery"]["workers"] for run in runs), 3),
            "driver_cpu_ms": round(
                mean(run["cpu_ms_per_delivery"]["driver (API)"] for run in runs), 3
            ),
        }
    return {
        "throughput": by_fanout,
        "latency_p50_ms": round(mean(turn["latency"]["p50_ms"] for turn in chosen), 1),
        "latency_p99_ms": round(mean(turn["latency"]["p99_ms"] for turn in chosen), 1),
        "publish_call_p50_ms": round(mean(turn["publish_call"]["p50_ms"] for turn in chosen), 1),
    }


async def run(bench: Bench) -> dict[str, Any]:
    bench.receiver.reset()
    # The smoke run checks that each mode works, once.
    order = TURNS[:2] if bench.sizes.smoke else TURNS
    turns = [await _turn(bench, index, traced) for index, traced in enumerate(order)]
    return {
        "title": "Tracing off vs on (OTLP/HTTP to a dropping endpoint): C and D, 2 workers",
        "turns": turns,
        "off": _averaged(turns, False),
        "on": _averaged(turns, True),
    }
