"""Migrations: numbered, forward-only SQL files in ``sql/migrations``, applied once each.

``schema_migrations`` records what ran. Procrastinate's schema is part of the history
(migration ``0001``): the first run applies the installed package's ``schema.sql`` and
records each upgrade file it ships as applied; a later procrastinate release brings new
upgrade files, and the next run applies those in version order. Everything runs in one
transaction under an advisory lock, so concurrent runs are safe and a failure leaves
nothing half-applied.

Number ``0007`` is skipped: no file by that number was ever committed (``0008`` came in
after ``0006``). The gap is harmless and stays: the ledger is by name, so a ``0007``
added now would run on deployed databases after ``0012``, out of order. New migrations
take the next number after the highest.

DDL scripts are not named queries, so this module, besides ``app.store.database``, runs SQL:
whole files, never SQL assembled in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from procrastinate.schema import SchemaManager

from app.store.queries import QUERIES

PROCRASTINATE_MARKER = "@procrastinate-schema"
PROCRASTINATE_PREFIX = "procrastinate/"


@dataclass(frozen=True)
class Migration:
    """One migration: its ledger name and the SQL that applies it."""

    name: str
    sql: str


def own_migrations() -> list[Migration]:
    """Our migrations, in file-name (number) order."""
    folder = resources.files("sql") / "migrations"
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    return [Migration(entry.name, entry.read_text(encoding="utf-8")) for entry in files]


def procrastinate_upgrades() -> list[Migration]:
    """The upgrade files shipped by the installed procrastinate, in version order."""
    folder = Path(SchemaManager.get_migrations_path())
    return [
        Migration(PROCRASTINATE_PREFIX + path.name, path.read_text(encoding="utf-8"))
        for path in sorted(folder.glob("*.sql"))
    ]


def pending_migrations(applied: set[str]) -> list[Migration]:
    """What still has to run, in order, given the names already applied."""
    pending: list[Migration] = []
    upgrades = procrastinate_upgrades()
    for migration in own_migrations():
        if migration.name in applied:
            continue
        if PROCRASTINATE_MARKER in migration.sql:
            pending.append(Migration(migration.name, SchemaManager.get_schema()))
            # schema.sql already contains every shipped upgrade: record them, don't run them.
            pending.extend(Migration(upgrade.name, "") for upgrade in upgrades)
            applied = applied | {upgrade.name for upgrade in upgrades}
        else:
            pending.append(migration)
    pending.extend(upgrade for upgrade in upgrades if upgrade.name not in applied)
    return _deduplicate(pending)


def _deduplicate(migrations: list[Migration]) -> list[Migration]:
    seen: set[str] = set()
    unique: list[Migration] = []
    for migration in migrations:
        if migration.name not in seen:
            seen.add(migration.name)
            unique.append(migration)
    return unique


def apply_migrations(conninfo: str) -> list[str]:
    """Apply every pending migration; returns the names applied (empty when up to date)."""
    with psycopg.connect(conninfo) as connection, connection.transaction():
        # The lock first: CREATE TABLE IF NOT EXISTS is not safe against a concurrent
        # create of the same table (two runs on a fresh database both pass the check,
        # and the second dies on the catalog's unique index).
        _run(connection, QUERIES["lock_migrations"])
        _run(connection, QUERIES["create_migrations_table"])
        with connection.cursor() as cursor:
            cursor.execute(QUERIES["applied_migrations"])
            applied = {row[0] for row in cursor.fetchall()}
        done: list[str] = []
        for migration in pending_migrations(applied):
            if migration.sql.strip():
                # Whole files run as one simple-protocol script (no parameters).
                connection.execute(migration.sql.encode(), prepare=False)
            _run(connection, QUERIES["record_migration"], {"name": migration.name})
            done.append(migration.name)
        return done


def _run(
    connection: psycopg.Connection[Any], query: str, arguments: dict[str, Any] | None = None
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(query, arguments)


def ensure_development_database(server_url: str) -> None:
    """Create the ``webhooks`` database on a fresh embedded server (no-op afterwards)."""
    with psycopg.connect(server_url, autocommit=True) as connection:
        with connection.cursor() as cursor:
            cursor.execute(QUERIES["database_exists"])
            if cursor.fetchone() is not None:
                return
        _run(connection, QUERIES["create_development_database"])
