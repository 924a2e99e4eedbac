"""Webhook subscriptions through the API: create, update, delete, list and page."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.domain import api_keys, companies
from app.store.services import Services, open_services
from app.web.server import build_app
from tests.catalogue import add_webhook_type
from tests.payloads import order_status_payload
from tests.service import GraphQLClient, Tenants, make_settings

SUBSCRIPTION_FIELDS = """
  id callbackUrl notificationEmail isActive description createdAt updatedAt
  webhook { key name }
  apiKeyParams { name valueHint }
"""
CREATE = f"""
mutation($input: CreateWebhookSubscriptionInput!) {{
  createWebhookSubscription(input: $input) {{
    subscription {{ {SUBSCRIPTION_FIELDS} }}
    signingSecret
    userErrors {{ field code message }}
  }}
}}"""
UPDATE = f"""
mutation($input: UpdateWebhookSubscriptionInput!) {{
  updateWebhookSubscription(input: $input) {{
    subscription {{ {SUBSCRIPTION_FIELDS} }}
    signingSecret
    userErrors {{ field code message }}
  }}
}}"""
DELETE = """
mutation($id: ID!) {
  deleteWebhookSubscription(id: $id) { deletedId userErrors { field code message } }
}"""
GET = f"""
query($id: ID!) {{ webhookSubscription(id: $id) {{ {SUBSCRIPTION_FIELDS} }} }}"""
LIST = """
query($first: Int, $after: String, $filter: WebhookSubscriptionFilter) {
  webhookSubscriptions(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id callbackUrl } }
    nodes { id callbackUrl isActive webhook { key } }
    pageInfo { hasNextPage endCursor }
  }
}"""
PUBLISH = """
mutation($input: PublishEventInput!) {
  publishEvent(input: $input) { event { id deliveries { id status } } userErrors { code } }
}"""
DELIVERY = """
query($id: ID!) {
  delivery(id: $id) { id status subscription { id callbackUrl isActive } event { id } }
}"""
EVERYTHING_READABLE = f"""
query {{
  webhookSubscriptions {{ nodes {{ {SUBSCRIPTION_FIELDS} }} }}
  deliveries {{ nodes {{ id webhookId subscription {{ {SUBSCRIPTION_FIELDS} }} }} }}
  events {{ nodes {{ id payload deliveries {{ subscription {{ {SUBSCRIPTION_FIELDS} }} }} }} }}
}}"""

URL = "http://127.0.0.1:9/hook"
EMAIL = "ops@example.com"
PARAM_VALUE = "k3y-0123456789abcd"


def new_subscription(**changes: Any) -> dict[str, Any]:
    return {"webhook": "ORDER_STATUS", "callbackUrl": URL, "notificationEmail": EMAIL} | changes


async def create(api: GraphQLClient, key: str, **changes: Any) -> dict[str, Any]:
    """Create a subscription that must be accepted; returns the mutation payload."""
    data = await api.data(CREATE, {"input": new_subscription(**changes)}, key=key)
    payload: dict[str, Any] = data["createWebhookSubscription"]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload


async def update(api: GraphQLClient, key: str, **fields: Any) -> dict[str, Any]:
    data = await api.data(UPDATE, {"input": fields}, key=key)
    payload: dict[str, Any] = data["updateWebhookSubscription"]
    return payload


async def listed(api: GraphQLClient, key: str, **variables: Any) -> dict[str, Any]:
    data = await api.data(LIST, variables, key=key)
    connection: dict[str, Any] = data["webhookSubscriptions"]
    return connection


async def publish(api: GraphQLClient, tenants: Tenants, company: str) -> list[dict[str, Any]]:
    """Publish an ORDER_STATUS event; returns its deliveries."""
    data = await api.data(
        PUBLISH,
        {
            "input": {
                "companyId": company,
                "webhook": "ORDER_STATUS",
                "payload": order_status_payload(n=1),
            }
        },
        key=tenants.publisher,
    )
    assert data["publishEvent"]["userErrors"] == []
    deliveries: list[dict[str, Any]] = data["publishEvent"]["event"]["deliveries"]
    return deliveries


async def sql(services: Services, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run SQL as the owner (test set-up and checks only)."""
    async with services.db.pool.connection() as connection:
        cursor = await connection.execute(statement, params)
        return await cursor.fetchall() if cursor.description else []


async def subscription_count(services: Services) -> int:
    rows = await sql(services, "SELECT count(*) FROM subscriptions")
    count: int = rows[0][0]
    return count


# --- create ---------------------------------------------------------------------------


async def test_create_returns_the_subscription_and_its_signing_secret(
    api: GraphQLClient, tenants: Tenants
) -> None:
    # When company A subscribes with an API key parameter and a description
    payload = await create(
        api,
        tenants.key_a,
        callbackUrl="http://127.0.0.1:9/hook?source=planomatic",
        apiKeyParams=[{"name": "api_key", "value": PARAM_VALUE}],
        description="Orders into our CRM",
    )

    # Then the subscription is returned as given, active by default
    subscription = payload["subscription"]
    assert subscription["webhook"] == {"key": "ORDER_STATUS", "name": "Order Status"}
    assert subscription["notificationEmail"] == EMAIL
    assert subscription["isActive"] is True
    assert subscription["description"] == "Orders into our CRM"
    assert subscription["createdAt"] == subscription["updatedAt"]
    # ...its callback URL without the API key parameter, whose value shows only as a hint
    assert subscription["callbackUrl"] == "http://127.0.0.1:9/hook?source=planomatic"
    assert subscription["apiKeyParams"] == [{"name": "api_key", "valueHint": "••••abcd"}]
    # ...and the signing secret comes with it, this once
    assert payload["signingSecret"].startswith("whsec_")
    assert len(payload["signingSecret"]) > len("whsec_") + 30


async def test_create_can_start_inactive_and_without_params(
    api: GraphQLClient, tenants: Tenants
) -> None:
    payload = await create(api, tenants.key_a, isActive=False)

    assert payload["subscription"]["isActive"] is False
    assert payload["subscription"]["apiKeyParams"] == []
    assert payload["subscription"]["description"] is None


async def test_a_short_param_value_is_masked_entirely(api: GraphQLClient, tenants: Tenants) -> None:
    payload = await create(api, tenants.key_a, apiKeyParams=[{"name": "k", "value": "abc123"}])

    assert payload["subscription"]["apiKeyParams"] == [{"name": "k", "valueHint": "••••"}]


async def test_each_subscription_gets_its_own_secret(api: GraphQLClient, tenants: Tenants) -> None:
    first = await create(api, tenants.key_a, callbackUrl="http://127.0.0.1:9/one")
    second = await create(api, tenants.key_a, callbackUrl="http://127.0.0.1:9/two")

    assert first["signingSecret"] != second["signingSecret"]


async def test_the_secret_and_param_values_are_never_returned_later(
    api: GraphQLClient, tenants: Tenants
) -> None:
    # Given a subscription with a secret and an API key parameter, and a delivery to it
    payload = await create(
        api, tenants.key_a, apiKeyParams=[{"name": "api_key", "value": PARAM_VALUE}]
    )
    secret = payload["signingSecret"]
    await publish(api, tenants, tenants.a)

    # When everything readable about it is read, as the company and as the publisher
    company_view = await api.data(EVERYTHING_READABLE, key=tenants.key_a)
    one = await api.data(GET, {"id": payload["subscription"]["id"]}, key=tenants.key_a)
    publisher_view = await api.post(
        "query { deliveries { nodes { subscription { id callbackUrl apiKeyParams "
        "{ valueHint } } } } }",
        key=tenants.publisher,
    )

    # Then neither the secret (nor its base64 part) nor the parameter value appears
    text = json.dumps([company_view, one, publisher_view], ensure_ascii=False)
    assert company_view["deliveries"]["nodes"], "the delivery should be readable"
    # (the publisher does not even read the configuration: test_api_publisher_rights.py)
    assert {error["extensions"]["code"] for error in publisher_view["errors"]} == {"FORBIDDEN"}
    assert secret not in text
    assert secret.removeprefix("whsec_") not in text
    assert PARAM_VALUE not in text


BAD_INPUTS: dict[str, tuple[dict[str, Any], list[str], str]] = {
    "missing-url": ({"callbackUrl": ""}, ["input", "callbackUrl"], "REQUIRED"),
    "relative-url": ({"callbackUrl": "/hooks/orders"}, ["input", "callbackUrl"], "INVALID"),
    "ftp-url": ({"callbackUrl": "ftp://127.0.0.1/hook"}, ["input", "callbackUrl"], "INVALID"),
    "no-host": ({"callbackUrl": "http:///hook"}, ["input", "callbackUrl"], "INVALID"),
    "private-target": (
        {"callbackUrl": "http://10.0.0.1/"},
        ["input", "callbackUrl"],
        "FORBIDDEN_TARGET",
    ),
    "link-local-metadata": (
        {"callbackUrl": "http://169.254.169.254/latest/meta-data"},
        ["input", "callbackUrl"],
        "FORBIDDEN_TARGET",
    ),
    "missing-email": ({"notificationEmail": ""}, ["input", "notificationEmail"], "REQUIRED"),
    "bad-email": (
        {"notificationEmail": "ops-at-example"},
        ["input", "notificationEmail"],
        "INVALID",
    ),
    "unknown-webhook": ({"webhook": "ORDER_SHIPPED"}, ["input", "webhook"], "UNKNOWN_WEBHOOK"),
    "bad-param-name": (
        {"apiKeyParams": [{"name": "api key", "value": "v"}]},
        ["input", "apiKeyParams", "0", "name"],
        "INVALID",
    ),
    "duplicate-param-names": (
        {"apiKeyParams": [{"name": "k", "value": "1"}, {"name": "k", "value": "2"}]},
        ["input", "apiKeyParams", "1", "name"],
        "DUPLICATE",
    ),
    "param-clashes-with-url-query": (
        {
            "callbackUrl": "http://127.0.0.1:9/hook?token=x",
            "apiKeyParams": [{"name": "token", "value": "secret"}],
        },
        ["input", "apiKeyParams", "0", "name"],
        "DUPLICATE",
    ),
    "empty-param-value": (
        {"apiKeyParams": [{"name": "k", "value": ""}]},
        ["input", "apiKeyParams", "0", "value"],
        "REQUIRED",
    ),
    "description-too-long": ({"description": "x" * 501}, ["input", "description"], "TOO_LARGE"),
    "description-control-chars": (
        {"description": "line\x07"},
        ["input", "description"],
        "INVALID",
    ),
    # Invisible and bidirectional-control characters would let text pose as other text.
    "description-bidi-override": (
        {"description": "Invoices \u202egnp.exe"},
        ["input", "description"],
        "INVALID",
    ),
    "description-zero-width-space": (
        {"description": "pay\u200bpal"},
        ["input", "description"],
        "INVALID",
    ),
    "callback-url-bidi-override": (
        {"callbackUrl": "http://127.0.0.1:9/\u202ekoob"},
        ["input", "callbackUrl"],
        "INVALID",
    ),
    "callback-url-bidi-isolate": (
        {"callbackUrl": "http://127.0.0.1:9/hook?\u2066a=b\u2069"},
        ["input", "callbackUrl"],
        "INVALID",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
async def test_bad_input_is_a_user_error_and_writes_nothing(
    api: GraphQLClient, services: Services, tenants: Tenants, case: str
) -> None:
    changes, field, code = BAD_INPUTS[case]

    # When company A submits the bad input
    data = await api.data(CREATE, {"input": new_subscription(**changes)}, key=tenants.key_a)

    # Then the payload names the field and the code, and has no subscription or secret
    payload = data["createWebhookSubscription"]
    assert [(error["field"], error["code"]) for error in payload["userErrors"]] == [(field, code)]
    assert payload["userErrors"][0]["message"]
    assert payload["subscription"] is None
    assert payload["signingSecret"] is None
    # ...and nothing was written
    assert (await listed(api, tenants.key_a))["nodes"] == []
    assert await subscription_count(services) == 0


async def test_every_bad_field_is_reported_at_once(api: GraphQLClient, tenants: Tenants) -> None:
    bad = new_subscription(webhook="NOPE", callbackUrl="ftp://x", notificationEmail="x")

    data = await api.data(CREATE, {"input": bad}, key=tenants.key_a)

    fields = {tuple(error["field"]) for error in data["createWebhookSubscription"]["userErrors"]}
    assert fields == {
        ("input", "webhook"),
        ("input", "callbackUrl"),
        ("input", "notificationEmail"),
    }


@pytest.fixture
async def production_api(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Any, str]]:
    """A GraphQL client of an app running with WEBHOOKS_ENV=production, and a company key."""
    settings = make_settings(database_url, tmp_path, env="production")
    async with open_services(settings) as services:
        company = await companies.create_company(services.db, "Prod Co", "prod-co")
        key = await api_keys.create_key(services.db, "COMPANY", company.id)
        transport = httpx.ASGITransport(app=build_app(settings, services=services))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield GraphQLClient(http), key.key


async def test_production_requires_https(production_api: tuple[GraphQLClient, str]) -> None:
    api, key = production_api

    # When a plain http:// URL is given in production
    data = await api.data(CREATE, {"input": new_subscription()}, key=key)

    # Then it is refused on the callbackUrl field
    errors = data["createWebhookSubscription"]["userErrors"]
    assert [(error["field"], error["code"]) for error in errors] == [
        (["input", "callbackUrl"], "INVALID")
    ]
    assert "https" in errors[0]["message"]


async def test_development_accepts_http(api: GraphQLClient, tenants: Tenants) -> None:
    # The same input passes in development (the fixtures' env); https is production's rule.
    payload = await create(api, tenants.key_a)

    assert payload["subscription"]["callbackUrl"] == URL


async def test_the_same_target_twice_is_a_duplicate(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given a subscription of ORDER_STATUS to a URL
    await create(api, tenants.key_a)

    # When the company subscribes the same webhook to the same URL again
    data = await api.data(CREATE, {"input": new_subscription()}, key=tenants.key_a)

    # Then it is a DUPLICATE on the URL, and still one subscription exists
    errors = data["createWebhookSubscription"]["userErrors"]
    assert [(error["field"], error["code"]) for error in errors] == [
        (["input", "callbackUrl"], "DUPLICATE")
    ]
    assert len((await listed(api, tenants.key_a))["nodes"]) == 1
    assert await subscription_count(services) == 1


async def test_another_company_may_use_the_same_target(
    api: GraphQLClient, tenants: Tenants
) -> None:
    await create(api, tenants.key_a)

    payload = await create(api, tenants.key_b)

    assert payload["subscription"]["callbackUrl"] == URL


async def test_a_deleted_target_can_be_subscribed_again(
    api: GraphQLClient, tenants: Tenants
) -> None:
    first = await create(api, tenants.key_a)
    await api.data(DELETE, {"id": first["subscription"]["id"]}, key=tenants.key_a)

    second = await create(api, tenants.key_a)

    assert second["subscription"]["id"] != first["subscription"]["id"]


# --- update ---------------------------------------------------------------------------


async def test_update_changes_only_the_fields_given(api: GraphQLClient, tenants: Tenants) -> None:
    # Given a subscription with a description and a parameter
    created = (
        await create(
            api,
            tenants.key_a,
            description="CRM",
            apiKeyParams=[{"name": "api_key", "value": PARAM_VALUE}],
        )
    )["subscription"]

    # When only the notification email changes
    payload = await update(
        api, tenants.key_a, id=created["id"], notificationEmail="new@example.com"
    )

    # Then that field changed, updatedAt moved on, and everything else is as it was
    updated = payload["subscription"]
    assert payload["userErrors"] == []
    assert payload["signingSecret"] is None
    assert updated["notificationEmail"] == "new@example.com"
    assert updated["updatedAt"] > created["updatedAt"]
    unchanged = ("id", "callbackUrl", "isActive", "description", "apiKeyParams", "createdAt")
    assert {name: updated[name] for name in unchanged} == {
        name: created[name] for name in unchanged
    }
    # ...as a later read confirms
    assert (await api.data(GET, {"id": created["id"]}, key=tenants.key_a))[
        "webhookSubscription"
    ] == updated


async def test_update_changes_the_callback_url(api: GraphQLClient, tenants: Tenants) -> None:
    created = (await create(api, tenants.key_a))["subscription"]

    payload = await update(
        api, tenants.key_a, id=created["id"], callbackUrl="http://127.0.0.1:9/v2"
    )

    assert payload["subscription"]["callbackUrl"] == "http://127.0.0.1:9/v2"


async def test_description_null_clears_it_and_omitted_keeps_it(
    api: GraphQLClient, tenants: Tenants
) -> None:
    created = (await create(api, tenants.key_a, description="CRM"))["subscription"]

    # When the description is omitted, it stays
    kept = await update(api, tenants.key_a, id=created["id"], isActive=True)
    assert kept["subscription"]["description"] == "CRM"

    # When it is given as null, it is cleared
    cleared = await update(api, tenants.key_a, id=created["id"], description=None)
    assert cleared["subscription"]["description"] is None


async def test_api_key_params_are_replaced_as_a_whole(api: GraphQLClient, tenants: Tenants) -> None:
    created = (
        await create(
            api,
            tenants.key_a,
            apiKeyParams=[{"name": "old", "value": "o" * 16}, {"name": "keep", "value": "k" * 16}],
        )
    )["subscription"]

    # When a new list is given
    replaced = await update(
        api, tenants.key_a, id=created["id"], apiKeyParams=[{"name": "new", "value": "n" * 16}]
    )
    # Then it replaces the old one entirely
    assert replaced["subscription"]["apiKeyParams"] == [{"name": "new", "valueHint": "••••nnnn"}]

    # And an empty list removes every parameter
    emptied = await update(api, tenants.key_a, id=created["id"], apiKeyParams=[])
    assert emptied["subscription"]["apiKeyParams"] == []


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        pytest.param(
            {"callbackUrl": "http://10.0.0.1/"},
            ["input", "callbackUrl"],
            "FORBIDDEN_TARGET",
            id="private-url",
        ),
        pytest.param(
            {"notificationEmail": "nope"}, ["input", "notificationEmail"], "INVALID", id="email"
        ),
        pytest.param(
            {"description": "x" * 501}, ["input", "description"], "TOO_LARGE", id="description"
        ),
        pytest.param(
            # The subscription's current URL carries ?source=…
            {"apiKeyParams": [{"name": "source", "value": "v"}]},
            ["input", "apiKeyParams", "0", "name"],
            "DUPLICATE",
            id="param-clashes-with-current-url",
        ),
    ],
)
async def test_a_bad_update_is_a_user_error_and_changes_nothing(
    api: GraphQLClient, tenants: Tenants, fields: dict[str, Any], field: list[str], code: str
) -> None:
    created = (await create(api, tenants.key_a, callbackUrl="http://127.0.0.1:9/hook?source=po"))[
        "subscription"
    ]

    payload = await update(api, tenants.key_a, id=created["id"], isActive=False, **fields)

    assert [(error["field"], error["code"]) for error in payload["userErrors"]] == [(field, code)]
    assert payload["subscription"] is None
    after = (await api.data(GET, {"id": created["id"]}, key=tenants.key_a))["webhookSubscription"]
    assert after == created  # not even isActive, which was valid, changed


async def test_updating_onto_another_subscriptions_target_is_a_duplicate(
    api: GraphQLClient, tenants: Tenants
) -> None:
    await create(api, tenants.key_a, callbackUrl="http://127.0.0.1:9/one")
    second = (await create(api, tenants.key_a, callbackUrl="http://127.0.0.1:9/two"))[
        "subscription"
    ]

    payload = await update(
        api, tenants.key_a, id=second["id"], callbackUrl="http://127.0.0.1:9/one"
    )

    assert [(error["field"], error["code"]) for error in payload["userErrors"]] == [
        (["input", "callbackUrl"], "DUPLICATE")
    ]


async def test_updating_a_missing_subscription_is_not_found(
    api: GraphQLClient, tenants: Tenants
) -> None:
    for missing in ("00000000-0000-4000-8000-000000000000", "not-a-uuid"):
        payload = await update(api, tenants.key_a, id=missing, isActive=False)

        assert [(error["field"], error["code"]) for error in payload["userErrors"]] == [
            (["input", "id"], "NOT_FOUND")
        ]


async def test_deactivating_cancels_open_deliveries_only(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given four deliveries to one subscription: pending, retrying, succeeded and failed
    subscription = (await create(api, tenants.key_a))["subscription"]
    ids = [(await publish(api, tenants, tenants.a))[0]["id"] for _ in range(4)]
    for delivery_id, status in zip(ids[1:], ("RETRYING", "SUCCEEDED", "FAILED"), strict=True):
        await sql(services, "UPDATE deliveries SET status = %s WHERE id = %s", status, delivery_id)

    # When the subscription is deactivated
    payload = await update(api, tenants.key_a, id=subscription["id"], isActive=False)

    # Then the pending and retrying ones are cancelled; finished ones keep their status
    assert payload["subscription"]["isActive"] is False
    statuses = []
    for delivery_id in ids:
        data = await api.data(DELIVERY, {"id": delivery_id}, key=tenants.key_a)
        statuses.append(data["delivery"]["status"])
    assert statuses == ["CANCELLED", "CANCELLED", "SUCCEEDED", "FAILED"]


async def test_an_inactive_subscription_gets_no_deliveries_until_reactivated(
    api: GraphQLClient, tenants: Tenants
) -> None:
    subscription = (await create(api, tenants.key_a, isActive=False))["subscription"]
    assert await publish(api, tenants, tenants.a) == []

    await update(api, tenants.key_a, id=subscription["id"], isActive=True)

    assert len(await publish(api, tenants, tenants.a)) == 1


# --- delete ---------------------------------------------------------------------------


async def test_delete_removes_it_but_keeps_its_past_deliveries_readable(
    api: GraphQLClient, tenants: Tenants
) -> None:
    # Given a subscription with a pending delivery
    subscription = (await create(api, tenants.key_a))["subscription"]
    delivery_id = (await publish(api, tenants, tenants.a))[0]["id"]

    # When it is deleted
    data = await api.data(DELETE, {"id": subscription["id"]}, key=tenants.key_a)

    # Then its id comes back, and it is gone from the list and from lookups
    assert data["deleteWebhookSubscription"] == {"deletedId": subscription["id"], "userErrors": []}
    assert (await listed(api, tenants.key_a))["nodes"] == []
    assert (await api.data(GET, {"id": subscription["id"]}, key=tenants.key_a)) == {
        "webhookSubscription": None
    }
    # ...its past delivery is still readable, with its subscription, and was cancelled
    delivery = (await api.data(DELIVERY, {"id": delivery_id}, key=tenants.key_a))["delivery"]
    assert delivery["status"] == "CANCELLED"
    assert delivery["subscription"]["id"] == subscription["id"]
    assert delivery["subscription"]["callbackUrl"] == URL
    assert delivery["subscription"]["isActive"] is False
    # ...and new events no longer reach it
    assert await publish(api, tenants, tenants.a) == []


@pytest.mark.parametrize("missing", ["00000000-0000-4000-8000-000000000000", "garbage"])
async def test_deleting_a_missing_subscription_is_not_found(
    api: GraphQLClient, tenants: Tenants, missing: str
) -> None:
    data = await api.data(DELETE, {"id": missing}, key=tenants.key_a)

    payload = data["deleteWebhookSubscription"]
    assert payload["deletedId"] is None
    assert [(error["field"], error["code"]) for error in payload["userErrors"]] == [
        (["id"], "NOT_FOUND")
    ]


async def test_deleting_twice_is_not_found_the_second_time(
    api: GraphQLClient, tenants: Tenants
) -> None:
    subscription_id = (await create(api, tenants.key_a))["subscription"]["id"]
    await api.data(DELETE, {"id": subscription_id}, key=tenants.key_a)

    data = await api.data(DELETE, {"id": subscription_id}, key=tenants.key_a)

    assert data["deleteWebhookSubscription"]["userErrors"][0]["code"] == "NOT_FOUND"


# --- list, filter, page ---------------------------------------------------------------


async def test_the_list_filters_by_webhook_and_active_state(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given a second webhook in the catalogue, and subscriptions to both, active or not
    await add_webhook_type(services, "MEDIA_READY", sample={"orderId": "o"})
    active_order = await create(api, tenants.key_a, callbackUrl="http://127.0.0.1:9/1")
    inactive_order = await create(
        api, tenants.key_a, callbackUrl="http://127.0.0.1:9/2", isActive=False
    )
    media = await create(api, tenants.key_a, webhook="MEDIA_READY")

    def ids(connection: dict[str, Any]) -> set[str]:
        return {node["id"] for node in connection["nodes"]}

    # Then each filter, and their combination, selects the matching ones
    order_ids = {active_order["subscription"]["id"], inactive_order["subscription"]["id"]}
    by_webhook = await listed(api, tenants.key_a, filter={"webhook": "ORDER_STATUS"})
    assert ids(by_webhook) == order_ids
    by_media = await listed(api, tenants.key_a, filter={"webhook": "MEDIA_READY"})
    assert ids(by_media) == {media["subscription"]["id"]}
    inactive = await listed(api, tenants.key_a, filter={"isActive": False})
    assert ids(inactive) == {inactive_order["subscription"]["id"]}
    both = await listed(api, tenants.key_a, filter={"webhook": "ORDER_STATUS", "isActive": True})
    assert ids(both) == {active_order["subscription"]["id"]}
    assert len((await listed(api, tenants.key_a))["nodes"]) == 3
    unknown = await listed(api, tenants.key_a, filter={"webhook": "NOPE"})
    assert unknown["nodes"] == []


async def insert_subscriptions(
    services: Services, company: str, count: int, *, same_moment: bool = False
) -> None:
    """Many subscriptions at once, the i-th created i seconds ago (or all at one moment)."""
    step = "0" if same_moment else "1"
    await sql(
        services,
        "INSERT INTO subscriptions (company_id, webhook_key, callback_url, notification_email,"
        " signing_secret, created_at, updated_at)"
        " SELECT %s, 'ORDER_STATUS', 'http://127.0.0.1:9/' || i, 'ops@example.com', 'x',"
        " now() - i * %s::interval, now() FROM generate_series(1, %s) AS i",
        company,
        f"{step} second",
        count,
    )


async def walk(api: GraphQLClient, key: str, first: int) -> list[dict[str, Any]]:
    """Every page of the list, following endCursor; returns the pages."""
    pages = []
    after = None
    while True:
        page = await listed(api, key, first=first, after=after)
        pages.append(page)
        edges = page["edges"]
        assert [edge["node"]["id"] for edge in edges] == [node["id"] for node in page["nodes"]]
        if edges:
            assert page["pageInfo"]["endCursor"] == edges[-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            return pages
        after = page["pageInfo"]["endCursor"]
        assert len(pages) < 20, "pagination does not end"


async def test_pages_run_newest_first_without_gaps_or_repeats(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given 105 subscriptions, created one second apart
    await insert_subscriptions(services, tenants.a, 105)

    # When the list is walked 40 at a time
    pages = await walk(api, tenants.key_a, 40)

    # Then the pages hold 40, 40 and 25, newest first, each once
    assert [len(page["nodes"]) for page in pages] == [40, 40, 25]
    assert [page["pageInfo"]["hasNextPage"] for page in pages] == [True, True, False]
    urls = [node["callbackUrl"] for page in pages for node in page["nodes"]]
    assert urls == [f"http://127.0.0.1:9/{index}" for index in range(1, 106)]


async def test_pages_stay_exact_when_rows_share_a_timestamp(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given 30 subscriptions created at the same moment (the id breaks the tie)
    await insert_subscriptions(services, tenants.a, 30, same_moment=True)

    pages = await walk(api, tenants.key_a, 7)

    ids = [node["id"] for page in pages for node in page["nodes"]]
    assert len(ids) == len(set(ids)) == 30


async def test_first_is_capped_at_100(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    await insert_subscriptions(services, tenants.a, 105)

    page = await listed(api, tenants.key_a, first=1000)

    assert len(page["nodes"]) == 100
    assert page["pageInfo"]["hasNextPage"] is True


async def test_the_default_page_is_50(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    await insert_subscriptions(services, tenants.a, 51)

    page = await listed(api, tenants.key_a)

    assert len(page["nodes"]) == 50
    assert page["pageInfo"]["hasNextPage"] is True


async def test_an_empty_list_has_no_cursor(api: GraphQLClient, tenants: Tenants) -> None:
    page = await listed(api, tenants.key_a)

    assert page == {"edges": [], "nodes": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        pytest.param({"after": "not-a-cursor"}, "not a valid cursor", id="malformed-cursor"),
        pytest.param({"first": 0}, "`first` must be at least 1", id="first-zero"),
        pytest.param({"first": -5}, "`first` must be at least 1", id="first-negative"),
    ],
)
async def test_bad_paging_arguments_are_bad_user_input(
    api: GraphQLClient, tenants: Tenants, variables: dict[str, Any], message: str
) -> None:
    body = await api.post(LIST, variables, key=tenants.key_a)

    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert message in error["message"]
    assert error["path"] == ["webhookSubscriptions"]
