"""A database out of resources (SQLSTATE class 53) is a retryable outage, not a bug.

The server here really raises the codes: a trigger the test installs on ``events`` fails
every insert with 53100 (disk full) or 53200 (out of memory), as PostgreSQL does when it
cannot extend a file or allocate memory.
"""

from __future__ import annotations

import httpx
import pytest

from app.store.services import Services
from tests.payloads import order_status_payload
from tests.service import Tenants

PUBLISH = """
mutation($input: PublishEventInput!) {
  publishEvent(input: $input) { event { id } userErrors { code } }
}"""
FAIL_INSERTS = """
CREATE FUNCTION test_no_room() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'could not extend file: No space left on device'
        USING ERRCODE = '{code}';
END $$;
CREATE TRIGGER test_no_room BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION test_no_room();
"""
ROOM_AGAIN = "DROP TRIGGER test_no_room ON events; DROP FUNCTION test_no_room();"


async def publish(http: httpx.AsyncClient, tenants: Tenants) -> httpx.Response:
    variables = {
        "input": {
            "companyId": tenants.a,
            "webhook": "ORDER_STATUS",
            "payload": order_status_payload(),
        }
    }
    return await http.post(
        "/graphql",
        json={"query": PUBLISH, "variables": variables},
        headers={"authorization": f"Bearer {tenants.publisher}"},
    )


async def run_script(services: Services, script: str) -> None:
    async with services.db.pool.connection() as connection:
        await connection.execute(script.encode(), prepare=False)


@pytest.mark.parametrize("code", ["53100", "53200"])
async def test_publishing_on_a_database_out_of_resources_answers_503_unavailable_with_retry_after(
    http: httpx.AsyncClient,
    services: Services,
    tenants: Tenants,
    code: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a server that fails every insert into events for lack of resources
    await run_script(services, FAIL_INSERTS.format(code=code))

    # when the order system publishes
    response = await publish(http, tenants)

    # then it is told to retry shortly, exactly as when no connection could be had
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    errors = response.json()["errors"]
    assert [error["extensions"]["code"] for error in errors] == ["UNAVAILABLE"]
    assert "No space left" not in response.text
    assert not [record for record in caplog.records if "unexpected error" in record.getMessage()]


async def test_readiness_reports_a_database_out_of_resources_until_it_has_recovered(
    http: httpx.AsyncClient, services: Services, tenants: Tenants
) -> None:
    # given a disk-full server (it still answers reads) and a publish that hit it
    await run_script(services, FAIL_INSERTS.format(code="53100"))
    assert (await http.get("/readyz")).status_code == 200
    assert (await publish(http, tenants)).status_code == 503

    # when the load balancer asks
    refused = await http.get("/readyz")

    # then the service is not ready, and says why
    assert refused.status_code == 503
    assert refused.json()["checks"] == {"database": True, "migrations": True, "resources": False}

    # and once there is room again and the alarm's hold has passed, it is ready again
    await run_script(services, ROOM_AGAIN)
    assert (await publish(http, tenants)).status_code == 200
    services.db.resource_alarm.hold_seconds = 0.0  # instead of waiting for it
    ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text


@pytest.fixture(autouse=True)
def _quiet_outage_warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING")
