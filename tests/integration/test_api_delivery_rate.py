"""A subscription's delivery rate through the API: set on create, kept, replaced or removed
on update, and a value out of range refused at its path with nothing written."""

from __future__ import annotations

from typing import Any

import pytest

from app.store.services import Services
from tests.service import GraphQLClient, Tenants

FIELDS = "id updatedAt maxDeliveriesPerSecond"
PAYLOAD = f"subscription {{ {FIELDS} }} userErrors {{ field code message }}"
CREATE = (
    "mutation($input: CreateWebhookSubscriptionInput!) {"
    f" createWebhookSubscription(input: $input) {{ {PAYLOAD} }} }}"
)
UPDATE = (
    "mutation($input: UpdateWebhookSubscriptionInput!) {"
    f" updateWebhookSubscription(input: $input) {{ {PAYLOAD} }} }}"
)
GET = f"query($id: ID!) {{ webhookSubscription(id: $id) {{ {FIELDS} }} }}"
RATE_FIELD = ["input", "maxDeliveriesPerSecond"]


def new_subscription(**changes: Any) -> dict[str, Any]:
    return {
        "webhook": "ORDER_STATUS",
        "callbackUrl": "http://127.0.0.1:9/hook",
        "notificationEmail": "ops@example.com",
    } | changes


async def create(api: GraphQLClient, key: str, **changes: Any) -> dict[str, Any]:
    data = await api.data(CREATE, {"input": new_subscription(**changes)}, key=key)
    payload: dict[str, Any] = data["createWebhookSubscription"]
    assert payload["userErrors"] == [], payload["userErrors"]
    subscription: dict[str, Any] = payload["subscription"]
    return subscription


async def stored_rates(services: Services) -> list[int | None]:
    async with services.db.pool.connection() as connection:
        cursor = await connection.execute(
            "SELECT max_deliveries_per_second FROM subscriptions ORDER BY created_at"
        )
        return [row[0] for row in await cursor.fetchall()]


async def test_a_rate_set_on_create_is_shown_and_stored(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    created = await create(api, tenants.key_a, maxDeliveriesPerSecond=50)

    got = await api.data(GET, {"id": created["id"]}, key=tenants.key_a)

    assert created["maxDeliveriesPerSecond"] == 50
    assert got["webhookSubscription"]["maxDeliveriesPerSecond"] == 50
    assert await stored_rates(services) == [50]


async def test_without_a_rate_there_is_no_limit(api: GraphQLClient, tenants: Tenants) -> None:
    created = await create(api, tenants.key_a)

    assert created["maxDeliveriesPerSecond"] is None


@pytest.mark.parametrize(
    ("change", "rate"),
    [({}, 50), ({"maxDeliveriesPerSecond": 5}, 5), ({"maxDeliveriesPerSecond": None}, None)],
    ids=["left-out-keeps-it", "a-value-replaces-it", "null-removes-it"],
)
async def test_an_update_keeps_replaces_or_removes_the_rate(
    api: GraphQLClient,
    services: Services,
    tenants: Tenants,
    change: dict[str, Any],
    rate: int | None,
) -> None:
    # Given a subscription limited to 50 a second
    created = await create(api, tenants.key_a, maxDeliveriesPerSecond=50)

    # When it is updated with the change (and a description, so that there is one)
    data = await api.data(
        UPDATE, {"input": {"id": created["id"], "description": "x", **change}}, key=tenants.key_a
    )

    # Then the rate is what the change says
    payload = data["updateWebhookSubscription"]
    assert payload["userErrors"] == []
    assert payload["subscription"]["maxDeliveriesPerSecond"] == rate
    assert await stored_rates(services) == [rate]


@pytest.mark.parametrize(("rate", "code"), [(0, "INVALID"), (-1, "INVALID"), (1001, "TOO_LARGE")])
async def test_a_rate_out_of_range_is_refused_on_create_and_nothing_is_written(
    api: GraphQLClient, services: Services, tenants: Tenants, rate: int, code: str
) -> None:
    data = await api.data(
        CREATE, {"input": new_subscription(maxDeliveriesPerSecond=rate)}, key=tenants.key_a
    )

    payload = data["createWebhookSubscription"]
    assert payload["subscription"] is None
    assert [(error["field"], error["code"]) for error in payload["userErrors"]] == [
        (RATE_FIELD, code)
    ]
    assert "from 1 to 1000" in payload["userErrors"][0]["message"]
    assert await stored_rates(services) == []


@pytest.mark.parametrize("rate", [0, 5000])
async def test_a_rate_out_of_range_is_refused_on_update_and_the_old_one_kept(
    api: GraphQLClient, services: Services, tenants: Tenants, rate: int
) -> None:
    created = await create(api, tenants.key_a, maxDeliveriesPerSecond=50)

    data = await api.data(
        UPDATE,
        {"input": {"id": created["id"], "maxDeliveriesPerSecond": rate, "description": "new"}},
        key=tenants.key_a,
    )

    payload = data["updateWebhookSubscription"]
    assert payload["subscription"] is None
    assert [error["field"] for error in payload["userErrors"]] == [RATE_FIELD]
    got = await api.data(GET, {"id": created["id"]}, key=tenants.key_a)
    assert got["webhookSubscription"] == created
    assert await stored_rates(services) == [50]


@pytest.mark.parametrize("rate", ["50", 2.5, 2**31, True])
async def test_a_rate_that_is_no_graphql_int_is_refused_by_graphql_not_a_crash(
    api: GraphQLClient, services: Services, tenants: Tenants, rate: object
) -> None:
    body = await api.post(
        CREATE, {"input": new_subscription(maxDeliveriesPerSecond=rate)}, key=tenants.key_a
    )

    assert body.get("data") is None
    [error] = body["errors"]
    assert error["message"].startswith("Variable '$input' has invalid value at")
    assert ".maxDeliveriesPerSecond: Int cannot represent" in error["message"]
    assert await stored_rates(services) == []
