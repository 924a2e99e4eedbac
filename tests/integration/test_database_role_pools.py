"""Role pools: the worker's and the publisher's statements run on connections that took on
their role for the whole session, and the main pool (shared with Procrastinate) never does.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from app.store.database import PUBLISHER_SCOPE, WORKER_SCOPE, Database, RowScope, scoped
from app.store.services import Services

SERVICE_ROLES = {"webhooks_api", "webhooks_publisher", "webhooks_worker"}


async def current_user(services: Services) -> str:
    async with services.db.autocommit() as session:
        cursor = await session.connection.execute("SELECT current_user")
        row = await cursor.fetchone()
        assert row is not None
        return str(row[0])


@pytest.mark.parametrize("scope", [WORKER_SCOPE, PUBLISHER_SCOPE])
async def test_a_company_less_scope_runs_as_its_role_in_autocommit_and_in_transactions(
    services: Services, scope: RowScope
) -> None:
    with scoped(scope):
        assert await current_user(services) == scope.role
        async with services.db.transaction() as tx:
            cursor = await tx.connection.execute("SELECT current_user")
            assert await cursor.fetchone() == (scope.role,)


async def test_a_company_scope_has_no_autocommit_connection(services: Services) -> None:
    """Row-level security holds a company only for a transaction: outside one it would not."""
    with scoped(RowScope("webhooks_api", "acme")), pytest.raises(RuntimeError, match="transaction"):
        async with services.db.autocommit():
            pass


async def test_the_main_pool_stays_the_owner_after_the_role_pools_were_used(
    services: Services,
) -> None:
    for scope in (WORKER_SCOPE, PUBLISHER_SCOPE):
        with scoped(scope):
            await current_user(services)
    # Every main-pool connection, not only the one that happens to come first.
    async with services.db.pool.connection() as first, services.db.pool.connection() as second:
        for connection in (first, second):
            cursor = await connection.execute("SELECT current_user")
            row = await cursor.fetchone()
            assert row is not None and row[0] not in SERVICE_ROLES
    assert await current_user(services) not in SERVICE_ROLES


async def test_a_lone_statement_on_a_role_pool_is_confined_to_the_role(
    services: Services,
) -> None:
    """The worker may not purge attempt details (retention runs as the owner)."""
    with scoped(WORKER_SCOPE), pytest.raises(psycopg.errors.InsufficientPrivilege):
        await services.db.execute("purge_attempt_details", cutoff=datetime.now(UTC), batch=10)


async def test_a_role_pool_must_be_made_with_its_role(services: Services) -> None:
    url = services.settings.database_url
    assert url is not None
    publisher_pool = Database.create_pool(url, role="webhooks_publisher")
    with pytest.raises(ValueError, match="must be made with role="):
        Database(services.db.pool, {WORKER_SCOPE: services.db.pool})
    with pytest.raises(ValueError, match="must be made with role="):
        Database(services.db.pool, {WORKER_SCOPE: publisher_pool})
    with pytest.raises(ValueError, match="without a company"):
        Database(services.db.pool, {RowScope("webhooks_api", "acme"): publisher_pool})
