"""S: SQL statements per first-attempt delivery, on the worker's side, counted.

Counted by PostgreSQL's ``pg_stat_statements`` (preloaded in the benchmark's own cluster,
``track = top``: the statements clients send, BEGIN and COMMIT included, not those the
queue's functions run inside). The events are published first with no worker on their
database; then the counts are reset, one ``webhooks worker`` starts and delivers every
delivery once (the receiver answers 200), and the statements of that database are counted
until the last is SUCCEEDED. The driver's own polling of progress is left out by its
text; what remains is the worker's: its start, fetches, attempts, finishes, heartbeats.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from bench.flow import wait_for_deliveries
from bench.queries import BENCH_QUERIES
from bench.statement_counts import counted, unavailable
from bench.suite import Bench
from bench.tenants import GraphQLClient, create_company, in_process_api, publisher_key, subscribe
from bench.throughput import BATCH, publish_many

# The statements shown in the report: the most called ones.
SHOWN = 12


async def run(bench: Bench) -> dict[str, Any]:
    database_url = bench.databases.create("statements")
    reason = unavailable(database_url)
    if reason is not None:
        bench.log(f"[bench] S skipped: {reason}")
        return {"title": "SQL statements per first-attempt delivery", "skipped": reason}
    events = max(1, bench.sizes.events // 2)
    async with in_process_api(bench.settings(database_url)) as (services, http):
        client = GraphQLClient(http, await publisher_key(services))
        company_id = await create_company(services, "s-statements")
        await subscribe(services, company_id, [bench.receiver.url("/ok")])
        await publish_many(client, company_id, events, bench.sizes.publishers, BATCH)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(BENCH_QUERIES["statements_reset"])
    started = time.monotonic()
    worker = bench.start_worker(database_url, "statements-worker")
    try:
        done = await wait_for_deliveries(
            database_url, company_id, events, within=120 + events / 20, check=worker.check
        )
        statements = counted(database_url)
    finally:
        worker.stop()
    succeeded = done["counts"].get("SUCCEEDED", 0)
    total = sum(calls for _, calls, _ in statements)
    per_delivery = round(total / succeeded, 2) if succeeded else float("nan")
    result = {
        "title": "SQL statements per first-attempt delivery (worker side, pg_stat_statements)",
        "method": "pg_stat_statements, track=top, BEGIN/COMMIT included, driver polling excluded",
        "deliveries": events,
        "succeeded": succeeded,
        "seconds": round(time.monotonic() - started, 2),
        "statements": total,
        "per_delivery": per_delivery,
        "transaction_control_per_delivery": round(
            sum(calls for query, calls, _ in statements if _is_transaction_control(query))
            / max(1, succeeded),
            2,
        ),
        "execution_ms_per_delivery": round(
            sum(exec_ms for _, _, exec_ms in statements) / max(1, succeeded), 3
        ),
        "top": [
            {
                "calls_per_delivery": round(calls / max(1, succeeded), 3),
                "execution_ms_per_delivery": round(exec_ms / max(1, succeeded), 3),
                "query": _short(query),
            }
            for query, calls, exec_ms in statements[:SHOWN]
        ],
    }
    bench.log(f"[bench] S {per_delivery} statements per first-attempt delivery")
    return result


def _is_transaction_control(query: str) -> bool:
    word = query.split(maxsplit=1)[0].upper() if query.strip() else ""
    return word in {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}


def _short(query: str) -> str:
    """A statement on one line, cut to a readable length."""
    line = " ".join(query.split())
    return line if len(line) <= 160 else line[:157] + "..."
