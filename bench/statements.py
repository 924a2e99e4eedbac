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
from bench.suite import Bench
from bench.tenants import GraphQLClient, create_company, in_process_api, publisher_key, subscribe
from bench.throughput import BATCH, publish_many

# The statements shown in the report: the most called ones.
SHOWN = 12


def counted(database_url: str) -> list[tuple[str, int]]:
    """(statement, calls) since the reset, the driver's polling left out: of the progress
    and of the worker's registration (``start_worker`` waits for it after the reset)."""
    polling = [BENCH_QUERIES[name].split()[0:4] for name in ("delivery_progress", "worker_count")]
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute(BENCH_QUERIES["statements_by_query"]).fetchall()
    return [
        (str(query), int(calls))
        for query, calls in rows
        if str(query).split()[0:4] not in polling and "pg_stat_statements" not in str(query)
    ]


def unavailable(database_url: str) -> str | None:
    """Why the statements cannot be counted on this server, or None."""
    try:
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute(BENCH_QUERIES["statements_ready"])
            connection.execute(BENCH_QUERIES["statements_reset"])
    except psycopg.Error as error:
        return f"pg_stat_statements is not available: {error.diag.message_primary or error}"
    return None


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
    total = sum(calls for _, calls in statements)
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
            sum(calls for query, calls in statements if _is_transaction_control(query))
            / max(1, succeeded),
            2,
        ),
        "top": [
            {"calls_per_delivery": round(calls / max(1, succeeded), 3), "query": _short(query)}
            for query, calls in statements[:SHOWN]
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
