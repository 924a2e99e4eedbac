"""Authentication and roles: who may call what, with the contract's error codes."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from app.domain import api_keys
from app.domain.api_keys import generate_key
from app.store.services import Services
from tests.payloads import order_status_payload
from tests.service import GraphQLClient, Tenants

VIEWER = "query { viewer { role company { id name } } }"
WEBHOOK_TYPES = "query { webhookTypes { key name description samplePayload } }"
SUBSCRIPTIONS = "query { webhookSubscriptions { nodes { id } } }"
SUBSCRIPTION = "query($id: ID!) { webhookSubscription(id: $id) { id } }"
EVENTS = "query { events { nodes { id } } }"
DELIVERIES = "query { deliveries { nodes { id } } }"
CREATE = """
mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) { subscription { id } userErrors { code } }
}"""
UPDATE = """
mutation($input: UpdateWebhookSubscriptionInput!) {
  updateWebhookSubscription(input: $input) { subscription { id } userErrors { code } }
}"""
DELETE = """
mutation($id: ID!) { deleteWebhookSubscription(id: $id) { deletedId userErrors { code } } }"""
ROTATE = """
mutation($id: ID!) {
  rotateWebhookSubscriptionSecret(id: $id) { signingSecret userErrors { code } }
}"""
SEND_TEST = """
mutation($id: ID!) { sendTestEvent(subscriptionId: $id) { event { id } userErrors { code } } }"""
REDELIVER = """
mutation($id: ID!) { redeliver(deliveryId: $id) { delivery { id } userErrors { code } } }"""
REDELIVER_FAILED = """
mutation($id: ID!) {
  redeliverFailed(subscriptionId: $id, since: "2026-01-01T00:00:00Z") { count userErrors { code } }
}"""
PUBLISH = """
mutation($input: PublishEventInput!) {
  publishEvent(input: $input) { event { id } userErrors { code } }
}"""

SOME_ID = str(uuid.uuid4())
NEW_SUBSCRIPTION = {
    "webhook": "ORDER_STATUS",
    "callbackUrl": "http://127.0.0.1:9/hook",
    "notificationEmail": "ops@example.com",
}

# Every operation, with variables that would be valid enough to reach the role check.
OPERATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "viewer": (VIEWER, {}),
    "webhookTypes": (WEBHOOK_TYPES, {}),
    "webhookSubscriptions": (SUBSCRIPTIONS, {}),
    "webhookSubscription": (SUBSCRIPTION, {"id": SOME_ID}),
    "events": (EVENTS, {}),
    "deliveries": (DELIVERIES, {}),
    "createWebhookSubscription": (CREATE, {"input": NEW_SUBSCRIPTION}),
    "updateWebhookSubscription": (UPDATE, {"input": {"id": SOME_ID, "isActive": False}}),
    "deleteWebhookSubscription": (DELETE, {"id": SOME_ID}),
    "rotateWebhookSubscriptionSecret": (ROTATE, {"id": SOME_ID}),
    "sendTestEvent": (SEND_TEST, {"id": SOME_ID}),
    "redeliver": (REDELIVER, {"id": SOME_ID}),
    "redeliverFailed": (REDELIVER_FAILED, {"id": SOME_ID}),
    "publishEvent": (
        PUBLISH,
        {
            "input": {
                "companyId": "company-a",
                "webhook": "ORDER_STATUS",
                "payload": order_status_payload(),
            }
        },
    ),
}
COMPANY_ONLY = [
    "webhookSubscriptions",
    "webhookSubscription",
    "createWebhookSubscription",
    "updateWebhookSubscription",
    "deleteWebhookSubscription",
    "rotateWebhookSubscriptionSecret",
    "sendTestEvent",
    "redeliver",
    "redeliverFailed",
]


def _error_code(body: dict[str, Any]) -> str:
    assert body.get("errors"), body
    code: str = body["errors"][0]["extensions"]["code"]
    return code


async def _post_with_header(
    http: httpx.AsyncClient, query: str, authorization: str | None
) -> dict[str, Any]:
    headers = {} if authorization is None else {"authorization": authorization}
    response = await http.post("/graphql", json={"query": query}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("Bearer", id="bearer-without-key"),
        pytest.param("Bearer    ", id="bearer-blank-key"),
        pytest.param("Basic dXNlcjpwYXNz", id="wrong-scheme"),
        pytest.param("Bearer not-a-key", id="malformed"),
        pytest.param("Bearer pwk_zzzzzzzz_" + "a" * 43, id="malformed-prefix"),
        pytest.param(f"Bearer {generate_key()[0]}", id="unknown"),
    ],
)
async def test_no_valid_key_is_unauthenticated(
    http: httpx.AsyncClient, tenants: Tenants, authorization: str | None
) -> None:
    # When a request carries no usable key
    body = await _post_with_header(http, VIEWER, authorization)

    # Then it is refused with UNAUTHENTICATED and no data
    assert _error_code(body) == "UNAUTHENTICATED"
    assert body["data"] is None


async def test_a_known_prefix_with_a_wrong_secret_is_unauthenticated(
    api: GraphQLClient, tenants: Tenants
) -> None:
    # Given company A's real key with its secret part changed
    prefix, _, secret = tenants.key_a.rpartition("_")
    forged = f"{prefix}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"

    body = await api.post(VIEWER, key=forged)

    assert _error_code(body) == "UNAUTHENTICATED"


async def test_a_revoked_key_is_unauthenticated(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given a key that worked
    created = await api_keys.create_key(services.db, "COMPANY", tenants.a)
    assert (await api.data(VIEWER, key=created.key))["viewer"]["role"] == "COMPANY"

    # When it is revoked
    await api_keys.revoke_key(services.db, created.prefix)

    # Then it no longer authenticates, while the company's other key still does
    assert _error_code(await api.post(VIEWER, key=created.key)) == "UNAUTHENTICATED"
    assert (await api.data(VIEWER, key=tenants.key_a))["viewer"]["role"] == "COMPANY"


async def test_the_bearer_scheme_is_case_insensitive(
    http: httpx.AsyncClient, tenants: Tenants
) -> None:
    body = await _post_with_header(http, VIEWER, f"bearer {tenants.key_a}")

    assert body["data"]["viewer"]["role"] == "COMPANY"


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_every_operation_needs_a_key(
    api: GraphQLClient, tenants: Tenants, operation: str
) -> None:
    query, variables = OPERATIONS[operation]

    body = await api.post(query, variables, key=None)

    assert _error_code(body) == "UNAUTHENTICATED"


async def test_a_company_key_cannot_publish_events(api: GraphQLClient, tenants: Tenants) -> None:
    # When company A's key tries to publish an event for its own company
    query, variables = OPERATIONS["publishEvent"]
    body = await api.post(query, variables, key=tenants.key_a)

    # Then it is FORBIDDEN and no event exists
    assert _error_code(body) == "FORBIDDEN"
    events = await api.data(EVENTS, key=tenants.publisher)
    assert events["events"]["nodes"] == []


@pytest.mark.parametrize("operation", COMPANY_ONLY)
async def test_a_publisher_key_cannot_manage_subscriptions(
    api: GraphQLClient, tenants: Tenants, operation: str
) -> None:
    query, variables = OPERATIONS[operation]

    body = await api.post(query, variables, key=tenants.publisher)

    assert _error_code(body) == "FORBIDDEN"
    assert "COMPANY key" in body["errors"][0]["message"]


async def test_a_publisher_cannot_create_a_subscription_for_anyone(
    api: GraphQLClient, tenants: Tenants
) -> None:
    await api.post(CREATE, {"input": NEW_SUBSCRIPTION}, key=tenants.publisher)

    for key in (tenants.key_a, tenants.key_b):
        assert (await api.data(SUBSCRIPTIONS, key=key))["webhookSubscriptions"]["nodes"] == []


@pytest.mark.parametrize("operation", ["webhookTypes", "events", "deliveries"])
async def test_both_roles_may_read_the_catalogue_events_and_deliveries(
    api: GraphQLClient, tenants: Tenants, operation: str
) -> None:
    query, variables = OPERATIONS[operation]

    for key in (tenants.key_a, tenants.publisher):
        body = await api.post(query, variables, key=key)
        assert "errors" not in body, body


async def test_the_catalogue_lists_order_status(api: GraphQLClient, tenants: Tenants) -> None:
    data = await api.data(WEBHOOK_TYPES, key=tenants.key_a)

    order_status = {item["key"]: item for item in data["webhookTypes"]}["ORDER_STATUS"]
    assert order_status["name"] == "Order Status"
    assert order_status["description"]
    assert isinstance(order_status["samplePayload"], dict)
    assert order_status["samplePayload"]["order_status"] == "scheduled"


async def test_a_company_viewer_has_its_role_and_company(
    api: GraphQLClient, tenants: Tenants
) -> None:
    data_a = await api.data(VIEWER, key=tenants.key_a)
    data_b = await api.data(VIEWER, key=tenants.key_b)

    assert data_a["viewer"] == {
        "role": "COMPANY",
        "company": {"id": tenants.a, "name": "Company A"},
    }
    assert data_b["viewer"]["company"] == {"id": tenants.b, "name": "Company B"}


async def test_a_publisher_viewer_has_no_company(api: GraphQLClient, tenants: Tenants) -> None:
    data = await api.data(VIEWER, key=tenants.publisher)

    assert data["viewer"] == {"role": "PUBLISHER", "company": None}
