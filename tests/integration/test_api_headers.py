"""Custom headers through the API: set on create, replaced on update, shown masked, stored
encrypted, and every bad entry refused at its path with nothing written."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from app.core.secret_box import SecretBoxError, header_context
from app.store.services import Services
from tests.service import GraphQLClient, Tenants

FIELDS = "id updatedAt apiKeyParams { name valueHint } headers { name valueHint }"
CREATE = f"""
mutation($input: CreateWebhookSubscriptionInput!) {{
  createWebhookSubscription(input: $input) {{
    subscription {{ {FIELDS} }}
    userErrors {{ field code message }}
  }}
}}"""
UPDATE = f"""
mutation($input: UpdateWebhookSubscriptionInput!) {{
  updateWebhookSubscription(input: $input) {{
    subscription {{ {FIELDS} }}
    userErrors {{ field code message }}
  }}
}}"""
GET = f"query($id: ID!) {{ webhookSubscription(id: $id) {{ {FIELDS} }} }}"

BEARER = "Bearer tok-SECRET-0123456789abcd"
TENANT = "acme-7"
URL = "http://127.0.0.1:9/hook"


def new_subscription(**changes: Any) -> dict[str, Any]:
    return {
        "webhook": "ORDER_STATUS",
        "callbackUrl": URL,
        "notificationEmail": "ops@example.com",
    } | changes


async def create(api: GraphQLClient, key: str, headers: list[dict[str, str]]) -> dict[str, Any]:
    data = await api.data(CREATE, {"input": new_subscription(headers=headers)}, key=key)
    payload: dict[str, Any] = data["createWebhookSubscription"]
    assert payload["userErrors"] == [], payload["userErrors"]
    subscription: dict[str, Any] = payload["subscription"]
    return subscription


async def stored(services: Services) -> list[tuple[Any, ...]]:
    """Every subscription row's id and headers column, as the owner reads them."""
    async with services.db.pool.connection() as connection:
        cursor = await connection.execute("SELECT id, headers FROM subscriptions ORDER BY id")
        return await cursor.fetchall()


def header(name: str, value: str) -> dict[str, str]:
    return {"name": name, "value": value}


async def test_create_shows_each_header_by_name_with_its_value_masked(
    api: GraphQLClient, tenants: Tenants
) -> None:
    # When a subscription is created with two headers
    body = await api.post(
        CREATE,
        {
            "input": new_subscription(
                headers=[header("Authorization", BEARER), header("X-Tenant", TENANT)]
            )
        },
        key=tenants.key_a,
    )
    created = body["data"]["createWebhookSubscription"]["subscription"]

    # Then their names come back with hints: the last four of a long value, none of a short
    hints = [
        {"name": "Authorization", "valueHint": "••••abcd"},
        {"name": "X-Tenant", "valueHint": "••••"},
    ]
    assert created["headers"] == hints
    # and reading it later shows the same, never a value
    later = await api.post(GET, {"id": created["id"]}, key=tenants.key_a)
    assert later["data"]["webhookSubscription"]["headers"] == hints
    for text in (json.dumps(body), json.dumps(later)):
        assert "tok-SECRET" not in text and TENANT not in text


async def test_a_subscription_without_headers_has_an_empty_list(
    api: GraphQLClient, tenants: Tenants
) -> None:
    data = await api.data(CREATE, {"input": new_subscription()}, key=tenants.key_a)

    assert data["createWebhookSubscription"]["subscription"]["headers"] == []


async def test_values_are_stored_sealed_to_their_subscription_and_name(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given two subscriptions, each with a header
    first = await create(api, tenants.key_a, [header("Authorization", BEARER)])
    second = await create(api, tenants.key_b, [header("X-Other", "other-0123456789")])

    # Then the database holds the names and hints, and the values sealed
    rows = {str(row_id): headers for row_id, headers in await stored(services)}
    [entry] = rows[first["id"]]
    assert (entry["name"], entry["hint"]) == ("Authorization", "••••abcd")
    assert entry["value"].startswith("v1:") and "tok-SECRET" not in json.dumps(rows)
    box, first_id = services.secret_box, uuid.UUID(first["id"])
    # opened only for their own subscription and name (whose case does not count)
    assert box.decrypt(entry["value"], context=header_context(first_id, "authorization")) == BEARER
    with pytest.raises(SecretBoxError):
        box.decrypt(entry["value"], context=header_context(first_id, "X-Other"))
    with pytest.raises(SecretBoxError):
        box.decrypt(
            entry["value"], context=header_context(uuid.UUID(second["id"]), "Authorization")
        )


REFUSALS = {
    "a name we own": (
        [header("Host", "h.example")],
        ["input", "headers", "0", "name"],
        "INVALID",
    ),
    "the signature's name, fourth": (
        [
            header("X-A", "a"),
            header("X-B", "b"),
            header("X-C", "c"),
            header("Webhook-Signature", BEARER),
        ],
        ["input", "headers", "3", "name"],
        "INVALID",
    ),
    "content-type in capitals": (
        [header("CONTENT-TYPE", "text/plain")],
        ["input", "headers", "0", "name"],
        "INVALID",
    ),
    "a name that is no token": (
        [header("X Tenant", TENANT)],
        ["input", "headers", "0", "name"],
        "INVALID",
    ),
    "a name given twice in two cases": (
        [header("Authorization", BEARER), header("authorization", BEARER)],
        ["input", "headers", "1", "name"],
        "DUPLICATE",
    ),
    "a name of 65 characters": (
        [header("X" * 65, BEARER)],
        ["input", "headers", "0", "name"],
        "TOO_LARGE",
    ),
    "a value with CR LF": (
        [header("Authorization", f"{BEARER}\r\nX-Injected: 1")],
        ["input", "headers", "0", "value"],
        "INVALID",
    ),
    "a value with a control character": (
        [header("Authorization", f"{BEARER}\x1b")],
        ["input", "headers", "0", "value"],
        "INVALID",
    ),
    "a value beyond ASCII": (
        [header("Authorization", f"{BEARER}é")],
        ["input", "headers", "0", "value"],
        "INVALID",
    ),
    "an empty value": (
        [header("Authorization", "")],
        ["input", "headers", "0", "value"],
        "REQUIRED",
    ),
    "a value over 4 KiB": (
        [header("Authorization", BEARER + "v" * 4096)],
        ["input", "headers", "0", "value"],
        "TOO_LARGE",
    ),
    "21 headers": (
        [header(f"X-{index}", BEARER) for index in range(21)],
        ["input", "headers"],
        "INVALID",
    ),
}


def assert_refused(payload: dict[str, Any], path: list[str], code: str) -> None:
    assert payload["subscription"] is None
    assert [(error["field"], error["code"]) for error in payload["userErrors"]] == [(path, code)]
    assert "SECRET" not in json.dumps(payload)


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_a_bad_header_on_create_is_refused_at_its_path_and_nothing_is_written(
    api: GraphQLClient, services: Services, tenants: Tenants, case: str
) -> None:
    headers, path, code = REFUSALS[case]

    data = await api.data(CREATE, {"input": new_subscription(headers=headers)}, key=tenants.key_a)

    assert_refused(data["createWebhookSubscription"], path, code)
    assert await stored(services) == []


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_a_bad_header_on_update_is_refused_at_its_path_and_changes_nothing(
    api: GraphQLClient, services: Services, tenants: Tenants, case: str
) -> None:
    # Given a subscription with a header
    created = await create(api, tenants.key_a, [header("Authorization", BEARER)])
    before = await stored(services)
    headers, path, code = REFUSALS[case]

    # When an update gives a bad list of headers, along with a good description
    data = await api.data(
        UPDATE,
        {"input": {"id": created["id"], "headers": headers, "description": "changed"}},
        key=tenants.key_a,
    )

    # Then it is refused, and neither the headers nor anything else changed
    assert_refused(data["updateWebhookSubscription"], path, code)
    assert await stored(services) == before
    after = await api.data(GET, {"id": created["id"]}, key=tenants.key_a)
    assert after["webhookSubscription"] == created


async def test_a_nul_in_a_value_refuses_the_whole_operation_without_repeating_it(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # NUL cannot be stored at all; every operation carrying one is refused before it runs
    body = await api.post(
        CREATE,
        {"input": new_subscription(headers=[header("Authorization", f"{BEARER}\x00")])},
        key=tenants.key_a,
    )

    assert [error["extensions"]["code"] for error in body["errors"]] == ["BAD_USER_INPUT"]
    assert "SECRET" not in json.dumps(body)
    assert await stored(services) == []


async def test_an_update_replaces_the_whole_list_and_without_it_keeps_it(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    created = await create(
        api, tenants.key_a, [header("Authorization", BEARER), header("X-Tenant", TENANT)]
    )

    # An update without headers keeps them
    kept = await api.data(
        UPDATE, {"input": {"id": created["id"], "description": "d"}}, key=tenants.key_a
    )
    assert kept["updateWebhookSubscription"]["subscription"]["headers"] == created["headers"]

    # A list replaces them all
    replaced = await api.data(
        UPDATE,
        {"input": {"id": created["id"], "headers": [header("X-New", "new-value-wxyz")]}},
        key=tenants.key_a,
    )
    assert replaced["updateWebhookSubscription"]["subscription"]["headers"] == [
        {"name": "X-New", "valueHint": "••••wxyz"}
    ]

    # An empty list removes them
    emptied = await api.data(
        UPDATE, {"input": {"id": created["id"], "headers": []}}, key=tenants.key_a
    )
    assert emptied["updateWebhookSubscription"]["subscription"]["headers"] == []
    assert [headers for _, headers in await stored(services)] == [[]]


async def test_an_update_with_the_same_name_rotates_the_value(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    created = await create(api, tenants.key_a, [header("Authorization", BEARER)])
    [(_, [old])] = await stored(services)

    data = await api.data(
        UPDATE,
        {
            "input": {
                "id": created["id"],
                "headers": [header("Authorization", "Bearer rotated-9876")],
            }
        },
        key=tenants.key_a,
    )

    assert data["updateWebhookSubscription"]["subscription"]["headers"] == [
        {"name": "Authorization", "valueHint": "••••9876"}
    ]
    [(subscription_id, [new])] = await stored(services)
    assert new["value"] != old["value"]
    context = header_context(subscription_id, "Authorization")
    assert services.secret_box.decrypt(new["value"], context=context) == "Bearer rotated-9876"
