"""EXPLAIN for the API's named queries, as the API runs them.

Each query runs in the API's database scope (role ``webhooks_api`` and the company, so
row-level security adds its filter) with realistic arguments, three ways:

- the custom plan PostgreSQL makes for these very arguments (``EXPLAIN ANALYZE``);
- the generic plan it may switch to once psycopg has prepared the statement (after
  ``prepare_threshold`` = 5 executions on a connection) and PostgreSQL has planned it
  5 more times: ``PREPARE`` + ``plan_cache_mode = force_generic_plan``;
- which of the two PostgreSQL actually picks after 10 prepared executions.

The ``%(name)s`` placeholders are turned into ``$n`` for PREPARE: a diagnostic of the
benchmark, not SQL the service runs.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import sql

from app.store.queries import QUERIES
from bench.queries import BENCH_QUERIES

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def positional(query: str) -> tuple[str, list[str]]:
    """``query`` with ``$1, $2, ...`` for its named placeholders, and the names in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _PLACEHOLDER.sub(number, query), names


def node_types(plan: dict[str, Any]) -> list[str]:
    """Every node of a JSON plan, as ``Node Type`` (plus `` on relation``)."""
    found = [
        plan["Node Type"] + (f" on {plan['Relation Name']}" if "Relation Name" in plan else "")
    ]
    for child in plan.get("Plans", []):
        found += node_types(child)
    return found


def _scope(connection: psycopg.Connection[Any], company_id: str) -> None:
    connection.execute(QUERIES["enter_scope"], {"role": "webhooks_api", "company_id": company_id})


def explain(
    database_url: str, name: str, arguments: dict[str, Any], company_id: str
) -> dict[str, Any]:
    """Custom and generic plans of the named query ``name`` with ``arguments``."""
    query = QUERIES[name]
    result: dict[str, Any] = {"query": name}
    with psycopg.connect(database_url) as connection:
        _explain_both(connection, query, arguments, company_id, result)
    result["seq_scan"] = any(
        "Seq Scan" in node for plan in ("custom", "generic") for node in result[plan]["nodes"]
    )
    result["chosen_after_10_runs"] = _plan_choice(database_url, query, arguments, company_id)
    return result


def _explain_both(
    connection: psycopg.Connection[Any],
    query: str,
    arguments: dict[str, Any],
    company_id: str,
    result: dict[str, Any],
) -> None:
    with connection.transaction():
        _scope(connection, company_id)
        row = connection.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query,
            arguments,
        ).fetchone()
        assert row is not None
        result["custom"] = _summary(row[0][0])
    text, names = positional(query)
    values = sql.SQL(", ").join(sql.Literal(arguments[key]) for key in names)
    with connection.transaction():
        _scope(connection, company_id)
        connection.execute(sql.SQL("PREPARE bench_generic AS ") + sql.SQL(text))
        connection.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        row = connection.execute(
            sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE bench_generic ({})").format(
                values
            )
        ).fetchone()
        assert row is not None
        result["generic"] = _summary(row[0][0])
        connection.execute("DEALLOCATE bench_generic")


def _summary(explained: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodes": node_types(explained["Plan"]),
        "planning_ms": round(explained.get("Planning Time", 0.0), 3),
        "execution_ms": round(explained.get("Execution Time", 0.0), 3),
    }


def _plan_choice(database_url: str, query: str, arguments: dict[str, Any], company_id: str) -> str:
    """Run the query 10 times as a server-side prepared statement (psycopg prepares from
    the 6th execution on a connection) and ask PostgreSQL which plan it settled on."""
    with psycopg.connect(database_url) as connection:
        for _ in range(10):
            with connection.transaction():
                _scope(connection, company_id)
                connection.execute(query, arguments, prepare=True)
        rows = connection.execute(BENCH_QUERIES["prepared_plan_choice"]).fetchall()
    for statement, generic, _custom in rows:
        if "set_config" in statement:
            continue
        # PostgreSQL plans the first 5 executions for their arguments, then keeps the
        # generic plan for good if it looks no worse.
        return "generic" if generic > 0 else "custom"
    return "unknown"
