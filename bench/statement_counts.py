"""Statements counted by ``pg_stat_statements`` on one database: for phase S, and for the
statements and fetches per delivery of phase C's runs."""

from __future__ import annotations

import psycopg

from bench.queries import BENCH_QUERIES


def counted(database_url: str) -> list[tuple[str, int, float]]:
    """(statement, calls, execution ms) since the reset, the driver's polling left out: of
    the progress and of the worker's registration (``start_worker`` waits for it after the
    reset)."""
    polling = [BENCH_QUERIES[name].split()[0:4] for name in ("delivery_progress", "worker_count")]
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute(BENCH_QUERIES["statements_by_query"]).fetchall()
    return [
        (str(query), int(calls), float(exec_ms))
        for query, calls, exec_ms in rows
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


def is_fetch(query: str) -> bool:
    """Whether ``query`` is a worker's job fetch (ours, or Procrastinate's own)."""
    return "webhooks_fetch_jobs" in query or "procrastinate_fetch_job" in query
