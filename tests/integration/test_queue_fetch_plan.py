"""The queue's fetch function keeps the plan that migration 0005 gives it."""

from __future__ import annotations

import re
from importlib import resources

import psycopg

from app.queries import parse_queries

FETCH_CALL = re.compile(r"FROM\s+(procrastinate_fetch_job\w*)\(")


def _fetch_function() -> str:
    """The function Procrastinate's worker calls to take a job (its ``fetch_job`` query)."""
    text = (resources.files("procrastinate") / "sql" / "queries.sql").read_text("utf-8")
    query = parse_queries(text)["fetch_job"]  # Procrastinate names its queries as we do
    match = FETCH_CALL.search(query)
    assert match is not None, query
    return match.group(1)


def test_the_function_the_worker_fetches_with_never_sorts_the_backlog(database_url: str) -> None:
    # given a migrated database
    # when we look at the function Procrastinate's worker calls
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT proconfig FROM pg_proc WHERE proname = %s", [_fetch_function()]
        ).fetchall()

    # then it exists once and runs without sorting (see sql/migrations/0005)
    assert len(rows) == 1
    assert "enable_sort=off" in (rows[0][0] or [])
