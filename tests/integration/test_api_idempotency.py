"""publishEvent idempotency keys: a retry returns the first event, a different event under
a used key is a DUPLICATE user error, and neither writes anything."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.subscriptions import NewSubscription
from app.store.services import Services
from tests.catalogue import add_webhook_type
from tests.payloads import order_status_payload
from tests.service import GraphQLClient, Tenants, create_subscription_for

PUBLISH = """
mutation($input: PublishEventInput!) {
  publishEvent(input: $input) {
    event { id subject payload idempotencyKey deliveries { id } }
    userErrors { field code message }
  }
}"""
KEY = "ord_1:SCHEDULED"
# Two extra fields, so that a retry can differ from the first event in small ways.
FIRST_PAYLOAD = order_status_payload(rooms=4, rush=False)
FIRST = {
    "companyId": "company-a",
    "webhook": "ORDER_STATUS",
    "subject": "ord_1",
    "payload": FIRST_PAYLOAD,
    "idempotencyKey": KEY,
}


async def publish(api: GraphQLClient, tenants: Tenants, **changes: Any) -> dict[str, Any]:
    """The publishEvent payload (event and userErrors) for FIRST with ``changes``."""
    data = await api.data(PUBLISH, {"input": FIRST | changes}, key=tenants.publisher)
    payload: dict[str, Any] = data["publishEvent"]
    return payload


async def counts(services: Services) -> tuple[int, int, int]:
    """How many events, deliveries and queued jobs exist."""
    async with services.db.pool.connection() as connection:
        cursor = await connection.execute(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM deliveries),"
            " (SELECT count(*) FROM procrastinate_jobs)"
        )
        row = await cursor.fetchone()
    assert row is not None
    return (row[0], row[1], row[2])


@pytest.fixture
async def first_event(api: GraphQLClient, services: Services, tenants: Tenants) -> dict[str, Any]:
    """Company A has one subscription, and FIRST was published once (one delivery)."""
    await create_subscription_for(
        services,
        tenants.a,
        NewSubscription("ORDER_STATUS", "http://127.0.0.1:9/hook", "ops@example.com"),
    )
    payload = await publish(api, tenants)
    assert payload["userErrors"] == []
    assert await counts(services) == (1, 1, 1)
    event: dict[str, Any] = payload["event"]
    return event


SAME_EVENT = {
    "identical": {},
    "keys-reordered": {"payload": dict(reversed(FIRST_PAYLOAD.items()))},
    "integer-as-decimal": {"payload": order_status_payload(rooms=4.0, rush=False)},
}


@pytest.mark.parametrize("case", list(SAME_EVENT))
async def test_a_retry_with_the_same_key_returns_the_first_event_and_writes_nothing(
    api: GraphQLClient, services: Services, tenants: Tenants, first_event: dict[str, Any], case: str
) -> None:
    # Given an event published with an idempotency key (first_event)
    # When the same event is published again under that key (equal as JSON)
    again = await publish(api, tenants, **SAME_EVENT[case])

    # Then the first event comes back, and nothing new was written or queued
    assert again["userErrors"] == []
    assert again["event"] == first_event
    assert await counts(services) == (1, 1, 1)


DIFFERENT_EVENT: dict[str, tuple[dict[str, Any], str]] = {
    "payload": (
        {"payload": order_status_payload(order_status="cancelled", rooms=4, rush=False)},
        "a different payload",
    ),
    "payload-true-is-not-1": (
        {"payload": order_status_payload(rooms=4, rush=0)},
        "a different payload",
    ),
    "payload-member-missing": (
        {"payload": order_status_payload(rooms=4)},
        "a different payload",
    ),
    "subject": ({"subject": "ord_2"}, "a different subject"),
    "subject-absent": ({"subject": None}, "a different subject"),
    "subject-and-payload": (
        {"subject": "ord_2", "payload": order_status_payload(order_id=2, rooms=4, rush=False)},
        "a different subject and payload",
    ),
}


@pytest.mark.parametrize("case", list(DIFFERENT_EVENT))
async def test_a_used_key_with_a_different_event_is_a_duplicate_error_and_writes_nothing(
    api: GraphQLClient, services: Services, tenants: Tenants, first_event: dict[str, Any], case: str
) -> None:
    changes, what = DIFFERENT_EVENT[case]
    # Given an event published with an idempotency key (first_event)
    # When another event is published under the same key
    again = await publish(api, tenants, **changes)

    # Then it is refused on the key, saying what differs; nothing was written or queued
    assert again["event"] is None
    [error] = again["userErrors"]
    assert error["field"] == ["input", "idempotencyKey"]
    assert error["code"] == "DUPLICATE"
    assert f"already used for an event with {what}." in error["message"]
    assert await counts(services) == (1, 1, 1)


async def test_a_used_key_with_another_webhook_is_a_duplicate_error(
    api: GraphQLClient, services: Services, tenants: Tenants, first_event: dict[str, Any]
) -> None:
    # Given a second webhook type, and an ORDER_STATUS event published with a key
    await add_webhook_type(services, "MEDIA_READY")

    # When a MEDIA_READY event with the same subject and payload reuses the key
    again = await publish(api, tenants, webhook="MEDIA_READY")

    # Then it is refused, naming the webhook
    assert again["event"] is None
    assert [(e["code"], e["field"]) for e in again["userErrors"]] == [
        ("DUPLICATE", ["input", "idempotencyKey"])
    ]
    assert "with a different webhook." in again["userErrors"][0]["message"]
    assert await counts(services) == (1, 1, 1)


async def test_the_first_event_stays_retrievable_by_its_key_after_a_refused_reuse(
    api: GraphQLClient, services: Services, tenants: Tenants, first_event: dict[str, Any]
) -> None:
    # Given a refused reuse of the key
    refused = await publish(api, tenants, subject="ord_2")
    assert refused["event"] is None

    # When the original event is retried
    retried = await publish(api, tenants)

    # Then it is still the first event
    assert retried["event"] == first_event


async def test_idempotency_keys_are_per_company(
    api: GraphQLClient, services: Services, tenants: Tenants, first_event: dict[str, Any]
) -> None:
    # Given company A's event under KEY (first_event)
    # When company B publishes a different event under the same key
    event_b = await publish(api, tenants, companyId=tenants.b, subject="for-b")

    # Then that is a new event of B, no error
    assert event_b["userErrors"] == []
    assert event_b["event"]["id"] != first_event["id"]
    assert event_b["event"]["subject"] == "for-b"
    assert await counts(services) == (2, 1, 1)  # B has no subscription


async def test_different_idempotency_keys_make_different_events(
    api: GraphQLClient, services: Services, tenants: Tenants, first_event: dict[str, Any]
) -> None:
    second = await publish(api, tenants, idempotencyKey="ord_1:SHOT")

    assert second["userErrors"] == []
    assert second["event"]["id"] != first_event["id"]
    assert await counts(services) == (2, 2, 2)
