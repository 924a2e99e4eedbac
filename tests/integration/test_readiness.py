"""/healthz says the process lives; /readyz says whether it can serve: database and schema."""

from __future__ import annotations

import httpx
import pytest

from app.store.services import Services


async def test_a_migrated_database_is_ready(http: httpx.AsyncClient) -> None:
    response = await http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "checks": {"database": True, "migrations": True, "resources": True},
    }


async def test_a_missing_migration_makes_the_service_not_ready(
    http: httpx.AsyncClient, services: Services
) -> None:
    async with services.db.transaction() as tx:
        await tx.connection.execute(
            "DELETE FROM schema_migrations WHERE name = '0004_delivery_notifications.sql'"
        )
    response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": True, "migrations": False, "resources": True}


async def test_liveness_needs_no_database(http: httpx.AsyncClient, services: Services) -> None:
    await services.db.pool.close()
    assert (await http.get("/healthz")).status_code == 200
    response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] is False


@pytest.fixture(autouse=True)
def _quiet_readiness_warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR", logger="app.web.probes")
