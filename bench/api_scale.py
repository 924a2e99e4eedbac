"""F: API latency at scale. A million deliveries (and their attempts) over 100 companies,
generated with SQL in a few statements per company, then one company's
``deliveries(first: 50)`` with attempts and ``delivery(id)``, over HTTP to a real
``webhooks serve``, one request at a time; and EXPLAIN of the SQL underneath.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg

from app.core.event_body import delivery_body
from app.core.ids import new_id
from bench.cpu import process_seconds
from bench.explain import explain
from bench.queries import BENCH_QUERIES
from bench.stats import summary_ms
from bench.suite import Bench, start_api
from bench.tenants import PAYLOAD, PAYLOAD_JSON, WEBHOOK, GraphQLClient, company_key

SUBSCRIPTIONS_PER_COMPANY = 10
WARM_UP = 10
DAYS = 30

ATTEMPT_FIELDS = "attempts { cycle number startedAt durationMs responseStatus error succeeded }"
DELIVERY_FIELDS = f"id webhookId status attemptCount lastResponseStatus createdAt {ATTEMPT_FIELDS}"
LIST = f"""
query Page {{
  deliveries(first: 50) {{ nodes {{ {DELIVERY_FIELDS} }} pageInfo {{ hasNextPage endCursor }} }}
}}
"""
LIST_FAILED = f"""
query Failed {{
  deliveries(first: 50, filter: {{status: FAILED}}) {{
    nodes {{ {DELIVERY_FIELDS} }} pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""
ONE = f"query One($id: ID!) {{ delivery(id: $id) {{ {DELIVERY_FIELDS} }} }}"


def generate(database_url: str, rows: int, companies: int) -> dict[str, Any]:
    """Fill the database with about ``rows`` deliveries; returns what was made and how fast."""
    events_per_company = max(1, rows // (companies * SUBSCRIPTIONS_PER_COMPANY))
    spacing = DAYS * 86400 / (events_per_company * companies)
    body = delivery_body(new_id(), WEBHOOK, "scale", "ord_1", datetime.now(UTC), PAYLOAD_JSON)
    started = time.monotonic()
    # Autocommit: each transaction() block below is its own transaction, one per company.
    with psycopg.connect(database_url, autocommit=True) as connection:
        superuser = connection.execute(BENCH_QUERIES["is_superuser"]).fetchone()
        if superuser and superuser[0]:
            connection.execute(BENCH_QUERIES["skip_triggers"])
        with connection.transaction():
            connection.execute(BENCH_QUERIES["scale_companies"], {"companies": companies})
            connection.execute(
                BENCH_QUERIES["scale_subscriptions"], {"per_company": SUBSCRIPTIONS_PER_COMPANY}
            )
        for index in range(companies):
            company_id = f"scale-{index + 1:03d}"
            with connection.transaction():
                connection.execute(
                    BENCH_QUERIES["scale_events"],
                    {
                        "company_id": company_id,
                        "payload": psycopg.types.json.Jsonb(PAYLOAD),
                        "body": body,
                        "events": events_per_company,
                        "offset": index / companies,
                        "spacing": spacing * companies,
                    },
                )
                connection.execute(BENCH_QUERIES["scale_deliveries"], {"company_id": company_id})
                connection.execute(BENCH_QUERIES["scale_attempts"], {"company_id": company_id})
    generated = time.monotonic() - started
    with psycopg.connect(database_url, autocommit=True) as connection:
        # What autovacuum would have done to a table that grew over months.
        connection.execute("VACUUM (ANALYZE) events, deliveries, delivery_attempts")
        sizes = connection.execute(BENCH_QUERIES["table_sizes"]).fetchall()
    return {
        "generate_seconds": round(generated, 1),
        "vacuum_analyze_seconds": round(time.monotonic() - started - generated, 1),
        "superuser_bulk_load": bool(superuser and superuser[0]),
        "tables": {name: {"rows": count, "size": size} for name, count, size in sizes},
    }


async def _timed(
    requests: list[tuple[str, dict[str, Any]]], client: GraphQLClient, api_pid: int
) -> dict[str, Any]:
    """Latency of each request after the warm-up, and the API process's CPU per request.

    The CPU time is what the shared machine's load does not inflate: a request waiting
    for a core spends wall time, not CPU time.
    """
    durations = []
    cpu_started = 0.0
    for index, (query, variables) in enumerate(requests):
        if index == WARM_UP:
            cpu_started = process_seconds(api_pid)
        started = time.perf_counter()
        await client.data(query, variables)
        if index >= WARM_UP:
            durations.append(time.perf_counter() - started)
    cpu_seconds = process_seconds(api_pid) - cpu_started
    summary: dict[str, Any] = summary_ms(durations)
    summary["api_cpu_ms_per_request"] = round(cpu_seconds * 1000 / max(1, len(durations)), 2)
    return summary


async def run(bench: Bench) -> dict[str, Any]:
    from app.store.services import open_services

    sizes = bench.sizes
    database_url = bench.databases.create("scale")
    bench.log(f"[bench] F generating {sizes.scale_rows:,} deliveries ...")
    data = generate(database_url, sizes.scale_rows, sizes.scale_companies)
    bench.log(f"[bench] F generated in {data['generate_seconds']} s: {data['tables']}")
    company_id = f"scale-{sizes.scale_companies // 2:03d}"
    # Phase L opens the portal over the same deliveries.
    bench.shared["scale"] = {"database_url": database_url, "company_id": company_id, "data": data}
    async with open_services(bench.settings(database_url)) as services:
        key = await company_key(services, company_id)
    with psycopg.connect(database_url) as connection:
        sample = [
            str(row[0])
            for row in connection.execute(
                BENCH_QUERIES["sample_deliveries"],
                {"company_id": company_id, "limit": WARM_UP + sizes.api_requests},
            )
        ]
        newest = [
            row[0]
            for row in connection.execute(
                BENCH_QUERIES["newest_deliveries"], {"company_id": company_id, "limit": 50}
            )
        ]
    api, base_url = start_api(bench, database_url, "api-scale")
    latency: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            client = GraphQLClient(http, key)
            count = WARM_UP + sizes.api_requests
            latency["deliveries_first_50"] = await _timed([(LIST, {})] * count, client, api.pid)
            latency["delivery_by_id"] = await _timed(
                [(ONE, {"id": delivery_id}) for delivery_id in sample], client, api.pid
            )
            latency["deliveries_first_50_failed"] = await _timed(
                [(LIST_FAILED, {})] * count, client, api.pid
            )
    finally:
        api.stop()
    plans = [
        explain(database_url, "list_deliveries", _list_arguments(company_id), company_id),
        explain(
            database_url,
            "list_deliveries",
            _list_arguments(company_id, status="FAILED"),
            company_id,
        ),
        explain(
            database_url,
            "get_delivery",
            {"id": sample[0], "company_id": company_id},
            company_id,
        ),
        explain(database_url, "attempts_of_deliveries", {"delivery_ids": newest}, company_id),
    ]
    plans[1]["query"] = "list_deliveries (status FAILED)"
    result = {
        "title": f"API latency over {sizes.scale_rows:,} deliveries (HTTP to webhooks serve)",
        "company": company_id,
        "data": data,
        "latency": latency,
        "explain": plans,
        "seq_scan": any(plan["seq_scan"] for plan in plans),
    }
    bench.log(f"[bench] F latency {latency}; seq scans: {result['seq_scan']}")
    return result


def _list_arguments(company_id: str, status: str | None = None) -> dict[str, Any]:
    return {
        "company_id": company_id,
        "status": status,
        "webhook_key": None,
        "subscription_id": None,
        "event_id": None,
        "subject": None,
        "created_after": None,
        "created_before": None,
        "after_created_at": None,
        "after_id": None,
        "limit": 51,
    }
