"""The queue's fetch function keeps the plan settings that migrations 0005 and 0008 give it."""

from __future__ import annotations

import re
from typing import Any

import psycopg

from app.store.queries import QUERIES

FETCH_CALL = re.compile(r"FROM\s+(webhooks_fetch_jobs\w*)\(")


def _fetch_function(connection: psycopg.Connection[Any]) -> str:
    """The function the worker calls to take its jobs: our ``fetch_jobs`` query (in
    sql/queries/queue.sql) calls migration 0025's, the batch form of Procrastinate's."""
    query = QUERIES["fetch_jobs"]
    match = FETCH_CALL.search(query)
    assert match is not None, query
    return match.group(1)


def _fetch_settings(database_url: str) -> list[str]:
    """The settings (``name=value``) the function runs with; it must exist exactly once."""
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT proconfig FROM pg_proc WHERE proname = %s", [_fetch_function(connection)]
        ).fetchall()
    assert len(rows) == 1
    return list(rows[0][0] or [])


def test_the_function_the_worker_fetches_with_never_sorts_the_backlog(database_url: str) -> None:
    # given a migrated database
    # when we look at the function Procrastinate's worker calls
    # then it runs without sorting (see sql/migrations/0005)
    assert "enable_sort=off" in _fetch_settings(database_url)


def test_the_function_the_worker_fetches_with_is_planned_once_per_connection(
    database_url: str,
) -> None:
    # given a migrated database
    # when we look at the function Procrastinate's worker calls
    # then its statement keeps one generic plan instead of planning calls anew
    # (see sql/migrations/0008)
    assert "plan_cache_mode=force_generic_plan" in _fetch_settings(database_url)
