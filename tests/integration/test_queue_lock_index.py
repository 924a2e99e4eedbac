"""The queue's fetch checks a job's lock with one index lookup (migrations 0008 and 0011),
and still takes exactly the job Procrastinate's rules say it should."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.integration.test_queue_fetch_plan import _fetch_function

LOCK_INDEX = "procrastinate_jobs_open_lock_c_idx"
# The statements of the fetch function that pick candidate jobs (migrations 0011 and 0025:
# one for jobs queued for now, one for scheduled jobs).
CANDIDATE = re.compile(
    r"SELECT\s+jobs\.id\s+(FROM\s+procrastinate_jobs\s+AS\s+jobs\b.*?SKIP\s+LOCKED)",
    re.DOTALL,
)
# The function's local variables the candidates read: the priority level being searched,
# and how many jobs are still wanted (both integers).
LOCALS = ["level", "wanted"]
BACKLOG = 2000


def _fetch_statements(
    connection: psycopg.Connection[Any],
) -> tuple[list[str], list[str], list[str]]:
    """The fetch function's candidate statements with its arguments as $1, $2... and the
    priority level as the last parameter, the parameters' types, and the settings the
    function runs with (``name=value``)."""
    row = connection.execute(
        "SELECT prosrc, proargnames, oidvectortypes(proargtypes), proconfig"
        " FROM pg_proc WHERE proname = %s",
        [_fetch_function(connection)],
    ).fetchone()
    assert row is not None
    source, names, types, config = row
    statements = [f"SELECT jobs.id {body}" for body in CANDIDATE.findall(source)]
    assert len(statements) == 2, f"the fetch function changed shape, re-check 0011:\n{source}"
    kinds = [part.strip() for part in types.split(",")]
    for number, name in enumerate([*names, *LOCALS], start=1):
        statements = [re.sub(rf"\b{re.escape(name)}\b", f"${number}", text) for text in statements]
    return statements, [*kinds, *["integer"] * len(LOCALS)], list(config or [])


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _lock_check_indexes(connection: psycopg.Connection[Any], mode: str) -> list[str | None]:
    """The index each scan of ``other_jobs`` (the lock check) uses, planned in ``mode``
    (a plpgsql function keeps generic or custom plans) with the function's own settings."""
    statements, types, config = _fetch_statements(connection)
    indexes: list[str | None] = []
    for statement in statements:
        connection.execute(
            sql.SQL("PREPARE fetch_candidate ({}) AS {}").format(
                sql.SQL(", ").join(sql.SQL(kind) for kind in types), sql.SQL(statement)
            )
        )
        try:
            with connection.transaction(force_rollback=True):
                for setting in [*config, f"plan_cache_mode={mode}"]:
                    name, _, value = setting.partition("=")
                    connection.execute("SELECT set_config(%s, %s, true)", [name, value])
                row = connection.execute(
                    "EXPLAIN (FORMAT JSON)"
                    " EXECUTE fetch_candidate(ARRAY['deliveries'], NULL, 10, 0, 10)"
                ).fetchone()
        finally:
            connection.execute("DEALLOCATE fetch_candidate")
        assert row is not None
        plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
        indexes += [
            node.get("Index Name")
            for node in _nodes(plan[0]["Plan"])
            if node.get("Relation Name") == "procrastinate_jobs"
            and node.get("Alias") == "other_jobs"
        ]
    return indexes


def _add_backlog(connection: psycopg.Connection[Any], jobs: int) -> None:
    """Delivery-shaped jobs waiting: one lock each, half of them already taken and deleted
    the way a worker does (so the indexes hold dead entries too)."""
    connection.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, args)"
        " SELECT 'deliveries', 'deliver', gen_random_uuid()::text, '{}'"
        " FROM generate_series(1, %s)",
        [jobs],
    )
    connection.execute(
        "UPDATE procrastinate_jobs SET status = 'doing'"
        " WHERE id IN (SELECT id FROM procrastinate_jobs ORDER BY id LIMIT %s)",
        [jobs // 2],
    )
    connection.execute("DELETE FROM procrastinate_jobs WHERE status = 'doing'")


@pytest.mark.parametrize("mode", ["force_generic_plan", "force_custom_plan"])
def test_the_fetch_looks_a_lock_up_instead_of_reading_every_open_job(
    database_url: str, mode: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        # given an empty queue (how a worker that starts idle plans its fetch)
        # then the lock check is a lookup in the lock index
        assert _lock_check_indexes(connection, mode) == [LOCK_INDEX, LOCK_INDEX]

        # and so it is with a backlog the statistics don't know about yet
        _add_backlog(connection, BACKLOG)
        assert _lock_check_indexes(connection, mode) == [LOCK_INDEX, LOCK_INDEX]

        # and once (auto)vacuum has counted it, before any ANALYZE: then every index on
        # lock looked as cheap as another (migration 0011)
        connection.execute("VACUUM procrastinate_jobs")
        assert _lock_check_indexes(connection, mode) == [LOCK_INDEX, LOCK_INDEX]

        # and once they do
        connection.execute("ANALYZE procrastinate_jobs")
        assert _lock_check_indexes(connection, mode) == [LOCK_INDEX, LOCK_INDEX]


def _defer(
    connection: psycopg.Connection[Any],
    name: str,
    *,
    lock: str | None = None,
    queueing_lock: str | None = None,
    priority: int = 0,
    status: str = "todo",
    in_seconds: int | None = None,
) -> int:
    row = connection.execute(
        "INSERT INTO procrastinate_jobs"
        " (queue_name, task_name, lock, queueing_lock, priority, status, scheduled_at)"
        " VALUES ('deliveries', %s, %s, %s, %s, %s,"
        "         now() + make_interval(secs => %s::int))"
        " RETURNING id",
        [name, lock, queueing_lock, priority, status, in_seconds],
    ).fetchone()
    assert row is not None
    return int(row[0])


def _take(connection: psycopg.Connection[Any], worker: int) -> str | None:
    row = connection.execute(
        sql.SQL("SELECT task_name FROM {}(%s, %s, 1)").format(
            sql.Identifier(_fetch_function(connection))
        ),
        [["deliveries"], worker],
    ).fetchone()
    return None if row is None else row[0]


def test_the_fetch_still_takes_the_job_procrastinates_rules_choose(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        worker_row = connection.execute(
            "INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id"
        ).fetchone()
        assert worker_row is not None
        worker = int(worker_row[0])
        # given jobs sharing locks, priorities, a job scheduled later, and a running job
        _defer(connection, "running", lock="B", status="doing")
        first_a = _defer(connection, "first A", lock="A")
        _defer(connection, "second A", lock="A")
        _defer(connection, "waits for B", lock="B", priority=9)
        _defer(connection, "later", priority=5, in_seconds=3600)
        _defer(connection, "urgent", priority=1)
        _defer(connection, "queued once", queueing_lock="Q")

        # then a second waiting job with the same queueing lock is refused
        with pytest.raises(psycopg.errors.UniqueViolation):
            _defer(connection, "queued twice", queueing_lock="Q")

        # and the fetch takes them by priority, then age, never past a held lock nor
        # before their time
        assert _take(connection, worker) == "urgent"
        assert _take(connection, worker) == "first A"
        assert _take(connection, worker) == "queued once"
        assert _take(connection, worker) is None

        # and the next job of a lock comes once the one before it has finished
        connection.execute("DELETE FROM procrastinate_jobs WHERE id = %s", [first_a])
        assert _take(connection, worker) == "second A"
