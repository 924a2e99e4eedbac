"""The queue's fetch costs the same with 20,000 retries waiting as with none (migration 0011),
and takes the jobs Procrastinate's rules say it should."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg import sql

from app.store.queries import QUERIES
from tests.integration.test_queue_fetch_plan import _fetch_function

RETRIES = 20_000
# What one fetch may read beyond what it reads with no backlog: a few index pages more
# (deeper trees) and a priority level more to look at, never a share of the backlog.
SLACK_BUFFERS = 25


def _worker(connection: psycopg.Connection[Any]) -> int:
    row = connection.execute(
        "INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id"
    ).fetchone()
    assert row is not None
    return int(row[0])


def _defer(
    connection: psycopg.Connection[Any],
    name: str,
    *,
    lock: str | None = None,
    priority: int = 0,
    in_seconds: float | None = None,
    queue: str = "deliveries",
) -> int:
    row = connection.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, priority, scheduled_at)"
        " VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s))"
        " RETURNING id",
        [queue, name, lock, priority, in_seconds],
    ).fetchone()
    assert row is not None
    return int(row[0])


def _add_retries(connection: psycopg.Connection[Any], count: int) -> None:
    """Delivery retries waiting six minutes, one lock each, as failed attempts leave them."""
    connection.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, args, scheduled_at)"
        " SELECT 'deliveries', 'retry', gen_random_uuid()::text, '{}',"
        "        now() + interval '6 minutes'"
        " FROM generate_series(1, %s)",
        [count],
    )


def _fetch_buffers(connection: psycopg.Connection[Any], worker: int) -> tuple[str | None, int]:
    """The task a fetch takes and the buffers it reads, once its plan is made: the first
    call after a change of statistics also reads the catalog to plan."""
    results = [_one_fetch(connection, worker) for _ in range(3)]
    return results[-1][0], min(buffers for _, buffers in results)


def _one_fetch(connection: psycopg.Connection[Any], worker: int) -> tuple[str | None, int]:
    """Run one fetch under EXPLAIN (ANALYZE, BUFFERS), rolled back: the task it took and
    the buffers it read or hit (the function's statements included)."""
    with connection.transaction(force_rollback=True):
        row = connection.execute(
            sql.SQL(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT task_name FROM {}(%s, %s, 1)"
            ).format(sql.Identifier(_fetch_function(connection))),
            [["deliveries"], worker],
        ).fetchone()
        taken = connection.execute(
            "SELECT task_name FROM procrastinate_jobs WHERE status = 'doing' AND worker_id = %s",
            [worker],
        ).fetchall()
    assert row is not None
    plan = (row[0] if isinstance(row[0], list) else json.loads(row[0]))[0]["Plan"]
    buffers = int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"])
    return (taken[0][0] if taken else None), buffers


def test_a_fetch_reads_as_much_with_20000_retries_waiting_as_with_none(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        worker = _worker(connection)
        # (the statistics change only where this test says so)
        connection.execute("ALTER TABLE procrastinate_jobs SET (autovacuum_enabled = off)")
        # given a new job and nothing else waiting (the plan is made in this state, as a
        # worker that starts idle makes it)
        _defer(connection, "new")
        alone = _fetch_buffers(connection, worker)

        # when 20,000 retries wait for later, queued before the new job (smaller ids,
        # the same priority: first in the index the fetch used to walk); then once
        # (auto)vacuum has counted them, before any ANALYZE; then once analyzed
        connection.execute("DELETE FROM procrastinate_jobs")
        connection.execute("VACUUM procrastinate_jobs")
        _add_retries(connection, RETRIES)
        _defer(connection, "new")
        behind_retries = _fetch_buffers(connection, worker)
        connection.execute("VACUUM procrastinate_jobs")
        vacuumed = _fetch_buffers(connection, worker)
        connection.execute("ANALYZE procrastinate_jobs")
        analyzed = _fetch_buffers(connection, worker)

        # and when the job to take is a postponed one that came due, below them all
        connection.execute("DELETE FROM procrastinate_jobs WHERE task_name = 'new'")
        _defer(connection, "postponed", priority=-1, in_seconds=-1)
        postponed = _fetch_buffers(connection, worker)

    # then each fetch takes the right job and reads a few buffers, as without the backlog
    print(
        f"\nbuffers per fetch: alone {alone[1]}, behind {RETRIES} retries {behind_retries[1]}"
        f" (vacuumed {vacuumed[1]}, analyzed {analyzed[1]}), a postponed job below them"
        f" {postponed[1]}"
    )
    assert [alone[0], behind_retries[0], vacuumed[0], analyzed[0], postponed[0]] == [
        "new",
        "new",
        "new",
        "new",
        "postponed",
    ]
    for _, buffers in (behind_retries, vacuumed, analyzed, postponed):
        assert buffers <= alone[1] + SLACK_BUFFERS


def _idle_fetch(connection: psycopg.Connection[Any], worker: int) -> tuple[float | None, int]:
    """The worker's whole fetch (``fetch_jobs``) finding nothing, under EXPLAIN (ANALYZE,
    BUFFERS), once planned: in how many seconds the next job is due, and the buffers read."""
    results = []
    for _ in range(3):
        with connection.transaction(force_rollback=True):
            arguments = {"queues": ["deliveries"], "worker_id": worker, "max_jobs": 50}
            row = connection.execute(QUERIES["fetch_jobs"], arguments).fetchone()
            plan_row = connection.execute(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + QUERIES["fetch_jobs"], arguments
            ).fetchone()
        assert row is not None and row[0] is None  # no job taken
        assert plan_row is not None
        plan = (plan_row[0] if isinstance(plan_row[0], list) else json.loads(plan_row[0]))[0]
        buffers = int(plan["Plan"]["Shared Hit Blocks"]) + int(plan["Plan"]["Shared Read Blocks"])
        results.append((row[-1], buffers))
    return results[-1][0], min(buffers for _, buffers in results)


def test_an_idle_fetch_finds_the_next_due_job_in_a_few_buffers_behind_20000_retries(
    database_url: str,
) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        worker = _worker(connection)
        connection.execute("ALTER TABLE procrastinate_jobs SET (autovacuum_enabled = off)")
        # given one retry waiting (the plan is made in this state)
        _add_retries(connection, 1)
        alone = _idle_fetch(connection, worker)

        # when 20,000 retries wait six minutes, then analyzed, and one comes due in 30 s
        _add_retries(connection, RETRIES - 1)
        behind_retries = _idle_fetch(connection, worker)
        connection.execute("ANALYZE procrastinate_jobs")
        analyzed = _idle_fetch(connection, worker)
        _defer(connection, "soon", lock="soon", in_seconds=30)
        soon = _idle_fetch(connection, worker)

    # then the fetch tells when the earliest is due, reading as few buffers as with one
    # (migration 0023's index: one descent from now(), whatever waits behind it)
    print(
        f"\nbuffers per idle fetch: 1 retry {alone[1]}, {RETRIES} {behind_retries[1]}"
        f" (analyzed {analyzed[1]}), one due sooner {soon[1]}"
    )
    for due, _ in (alone, behind_retries, analyzed):
        assert due is not None and 350 < due <= 360
    assert soon[0] is not None and 25 < soon[0] <= 30
    for _, buffers in (behind_retries, analyzed, soon):
        assert buffers <= alone[1] + SLACK_BUFFERS


def _take(
    connection: psycopg.Connection[Any], worker: int, queues: list[str] | None = None
) -> str | None:
    row = connection.execute(
        sql.SQL("SELECT task_name FROM {}(%s, %s, 1)").format(
            sql.Identifier(_fetch_function(connection))
        ),
        [queues if queues is not None else ["deliveries"], worker],
    ).fetchone()
    return None if row is None else row[0]


def test_jobs_are_taken_by_priority_then_age_and_only_once_due(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        worker = _worker(connection)
        # given jobs queued for now and scheduled jobs, due or not, on two levels
        _defer(connection, "retry, later", in_seconds=3600)
        _defer(connection, "retry, due", in_seconds=-5)
        _defer(connection, "new")
        _defer(connection, "postponed, due second", priority=-1, in_seconds=-2)
        _defer(connection, "postponed, due first", priority=-1, in_seconds=-10)
        _defer(connection, "postponed, later", priority=-1, in_seconds=3600)
        _defer(connection, "email", queue="notices")
        _defer(connection, "urgent, due", priority=5, in_seconds=-1)

        # then the fetch takes the higher priority first; on one level the older job,
        # whether queued for now or come due; scheduled jobs in the order they came due;
        # nothing before its time, nothing of a queue not asked for
        taken = [_take(connection, worker) for _ in range(6)]
        assert taken == [
            "urgent, due",
            "retry, due",
            "new",
            "postponed, due first",
            "postponed, due second",
            None,
        ]
        assert _take(connection, worker, ["notices"]) == "email"


def test_a_job_waits_while_an_earlier_one_of_its_lock_waits_or_runs(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        worker = _worker(connection)
        # given a lock whose first job is scheduled for later, and a lock held by a
        # running job
        _defer(connection, "first of A, later", lock="A", in_seconds=3600)
        _defer(connection, "second of A", lock="A")
        _defer(connection, "second of A, due", lock="A", in_seconds=-1)
        running = _defer(connection, "running B", lock="B")
        connection.execute(
            "UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", [running]
        )
        _defer(connection, "next of B", lock="B", in_seconds=-1)
        _defer(connection, "free")

        # then only the job whose lock is free is taken
        assert _take(connection, worker) == "free"
        assert _take(connection, worker) is None

        # and the next of B once B's running job has finished
        connection.execute("DELETE FROM procrastinate_jobs WHERE id = %s", [running])
        assert _take(connection, worker) == "next of B"
