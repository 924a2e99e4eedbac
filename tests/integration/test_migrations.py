"""Migrations: applied once each, recorded in a ledger, all or nothing."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest

from app.store import migrations
from app.store.migrations import (
    PROCRASTINATE_PREFIX,
    Migration,
    apply_migrations,
    own_migrations,
    procrastinate_upgrades,
)
from tests.database import PostgresServer

FAKE_UPGRADE = Migration(
    PROCRASTINATE_PREFIX + "99.99.99_01_fake_upgrade.sql",
    "CREATE TABLE fake_upgrade_marker (id integer);INSERT INTO fake_upgrade_marker VALUES (1);",
)
BROKEN_UPGRADE = Migration(
    PROCRASTINATE_PREFIX + "99.99.99_02_broken_upgrade.sql", "CREATE TABLE (oops;"
)


@pytest.fixture
def empty_database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A database of this test's own with nothing in it."""
    name = f"webhooks_empty_{secrets.token_hex(6)}"
    with postgres_server.janitor(name):
        yield postgres_server.url(name)


def _ledger(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()
    return [row[0] for row in rows]


def _table_exists(url: str, table: str) -> bool:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    assert row is not None
    return bool(row[0])


def test_first_run_applies_everything_and_the_second_nothing(empty_database_url: str) -> None:
    # Given an empty database
    # When migrations run twice
    first = apply_migrations(empty_database_url)
    second = apply_migrations(empty_database_url)

    # Then the first run applied our files, in order, and recorded procrastinate's upgrades;
    # the second found nothing to do
    ours = [migration.name for migration in own_migrations()]
    upgrades = [migration.name for migration in procrastinate_upgrades()]
    assert [name for name in first if not name.startswith(PROCRASTINATE_PREFIX)] == ours
    assert sorted(name for name in first if name.startswith(PROCRASTINATE_PREFIX)) == sorted(
        upgrades
    )
    assert second == []
    assert _ledger(empty_database_url) == sorted(first)


def test_an_up_to_date_database_applies_nothing(database_url: str) -> None:
    # The per-test database is a copy of the migrated template.
    assert apply_migrations(database_url) == []


def test_the_ledger_holds_our_files_and_procrastinates_upgrades(database_url: str) -> None:
    ledger = set(_ledger(database_url))

    assert {"0001_procrastinate.sql", "0002_core.sql"} <= ledger
    assert {migration.name for migration in own_migrations()} <= ledger
    upgrades = {migration.name for migration in procrastinate_upgrades()}
    assert upgrades, "the installed procrastinate ships no upgrade files?"
    assert all(name.startswith("procrastinate/") for name in upgrades)
    assert upgrades <= ledger


def test_procrastinates_schema_and_ours_exist(database_url: str) -> None:
    for table in (
        "procrastinate_jobs",
        "procrastinate_events",
        "companies",
        "api_keys",
        "webhook_types",
        "subscriptions",
        "events",
        "deliveries",
        "delivery_attempts",
    ):
        assert _table_exists(database_url, table), table


def test_a_new_procrastinate_upgrade_is_applied_exactly_once(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a newer procrastinate release that ships one more upgrade file
    shipped = procrastinate_upgrades()
    monkeypatch.setattr(migrations, "procrastinate_upgrades", lambda: [*shipped, FAKE_UPGRADE])

    # When migrations run twice
    first = apply_migrations(database_url)
    second = apply_migrations(database_url)

    # Then only the new file ran, once, and the ledger records it
    assert first == [FAKE_UPGRADE.name]
    assert second == []
    assert FAKE_UPGRADE.name in _ledger(database_url)
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT count(*) FROM fake_upgrade_marker").fetchone() == (1,)


def test_a_failing_migration_leaves_nothing_half_applied(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two new upgrades, the second of which fails
    shipped = procrastinate_upgrades()
    monkeypatch.setattr(
        migrations, "procrastinate_upgrades", lambda: [*shipped, FAKE_UPGRADE, BROKEN_UPGRADE]
    )
    before = _ledger(database_url)

    # When migrations run
    with pytest.raises(psycopg.errors.SyntaxError):
        apply_migrations(database_url)

    # Then neither upgrade is recorded, and the first one's table was rolled back too
    assert _ledger(database_url) == before
    assert not _table_exists(database_url, "fake_upgrade_marker")
