"""publishEvents: up to 100 events in one call, each published as publishEvent publishes
it: results in input order, each with its own userErrors, idempotency keys per event,
a refused event never stops the others, and each event goes to its own company only."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from app.domain.subscriptions import NewSubscription
from app.store.services import Services
from tests.integration.test_api_events import counts, sql
from tests.payloads import order_status_payload
from tests.service import GraphQLClient, Tenants, create_subscription_for

PUBLISH_MANY = """
mutation($input: PublishEventsInput!) {
  publishEvents(input: $input) {
    results {
      event { id subject idempotencyKey company { id } deliveries { id } }
      userErrors { field code message }
    }
    userErrors { field code message }
  }
}"""
PUBLISH_ONE = """
mutation($input: PublishEventInput!) {
  publishEvent(input: $input) { event { id } userErrors { field code } }
}"""


def event(company_id: str, order_id: int, **changes: Any) -> dict[str, Any]:
    """A valid ORDER_STATUS event of ``company_id`` about order ``order_id``."""
    return {
        "companyId": company_id,
        "webhook": "ORDER_STATUS",
        "payload": order_status_payload(order_id=order_id),
    } | changes


async def publish_many(
    api: GraphQLClient, key: str, events: list[dict[str, Any]]
) -> dict[str, Any]:
    data = await api.data(PUBLISH_MANY, {"input": {"events": events}}, key=key)
    payload: dict[str, Any] = data["publishEvents"]
    return payload


@pytest.fixture
async def subscribed(services: Services, tenants: Tenants) -> None:
    """Companies A and B each have one ORDER_STATUS subscription."""
    for company_id in (tenants.a, tenants.b):
        await create_subscription_for(
            services,
            company_id,
            NewSubscription("ORDER_STATUS", f"http://127.0.0.1:9/{company_id}", "ops@example.com"),
        )


async def test_results_come_in_input_order_and_a_bad_event_never_stops_the_good_ones(
    api: GraphQLClient, services: Services, tenants: Tenants, subscribed: None
) -> None:
    # Given a batch of good events with two bad ones among them
    batch = [
        event(tenants.a, 1),
        event(tenants.a, 2, webhook="NO_SUCH_WEBHOOK"),
        event(tenants.b, 3),
        event(tenants.a, 4, payload=order_status_payload(order_id=4, order_status=7)),
        event(tenants.a, 5),
    ]

    # When it is published
    payload = await publish_many(api, tenants.publisher, batch)

    # Then each event has its result at its place; the bad ones name their own index
    assert payload["userErrors"] == []
    results = payload["results"]
    assert [result["event"] and result["event"]["subject"] for result in results] == [
        "1",
        None,
        "3",
        None,
        "5",
    ]
    assert [result["userErrors"] for result in (results[0], results[2], results[4])] == [[]] * 3
    [unknown] = results[1]["userErrors"]
    assert (unknown["field"], unknown["code"]) == (
        ["input", "events", "1", "webhook"],
        "UNKNOWN_WEBHOOK",
    )
    assert results[3]["userErrors"], "the mistyped order_status is refused"
    for error in results[3]["userErrors"]:
        assert error["field"][:4] == ["input", "events", "3", "payload"]
        assert error["code"] == "SCHEMA_MISMATCH"
    # And the three good ones were written whole (one delivery and one job each), the bad
    # ones not at all
    assert await counts(services) == (3, 3, 3)


async def test_each_event_goes_to_its_own_company_only(
    api: GraphQLClient, services: Services, tenants: Tenants, subscribed: None
) -> None:
    # Given a batch mixing events of companies A and B
    batch = [event(tenants.a, 1), event(tenants.b, 2), event(tenants.a, 3)]

    # When it is published
    results = (await publish_many(api, tenants.publisher, batch))["results"]

    # Then every event belongs to its company, and its deliveries to that company's
    # subscription alone
    assert [result["event"]["company"]["id"] for result in results] == [
        tenants.a,
        tenants.b,
        tenants.a,
    ]
    rows = await sql(
        services,
        "SELECT e.subject, d.company_id, s.company_id FROM deliveries d"
        " JOIN events e ON e.id = d.event_id JOIN subscriptions s ON s.id = d.subscription_id"
        " ORDER BY e.subject",
    )
    assert rows == [
        ("1", tenants.a, tenants.a),
        ("2", tenants.b, tenants.b),
        ("3", tenants.a, tenants.a),
    ]


async def test_idempotency_keys_hold_per_event_within_a_batch_and_across_calls(
    api: GraphQLClient, services: Services, tenants: Tenants, subscribed: None
) -> None:
    # Given an event published alone with key "k1"
    alone = await api.data(
        PUBLISH_ONE, {"input": event(tenants.a, 1, idempotencyKey="k1")}, key=tenants.publisher
    )
    first_id = alone["publishEvent"]["event"]["id"]

    # When a batch repeats it, publishes "k2" twice, and reuses "k2" for another order
    results = (
        await publish_many(
            api,
            tenants.publisher,
            [
                event(tenants.a, 1, idempotencyKey="k1"),
                event(tenants.a, 2, idempotencyKey="k2"),
                event(tenants.a, 2, idempotencyKey="k2"),
                event(tenants.a, 3, idempotencyKey="k2"),
            ],
        )
    )["results"]

    # Then the repeats answer with the first events, the misuse is a DUPLICATE at its
    # index, and only "k2"'s event is new
    ids = [result["event"] and result["event"]["id"] for result in results]
    assert ids[0] == first_id
    assert ids[1] is not None and ids[2] == ids[1] and ids[1] != first_id
    assert ids[3] is None
    [duplicate] = results[3]["userErrors"]
    assert duplicate["field"] == ["input", "events", "3", "idempotencyKey"]
    assert duplicate["code"] == "DUPLICATE"
    assert await counts(services) == (2, 2, 2)

    # And a second call with the same keys (a caller's retry) writes nothing more
    again = (
        await publish_many(
            api,
            tenants.publisher,
            [event(tenants.a, 1, idempotencyKey="k1"), event(tenants.a, 2, idempotencyKey="k2")],
        )
    )["results"]
    assert [result["event"]["id"] for result in again] == ids[:2]
    assert await counts(services) == (2, 2, 2)


async def test_only_publisher_keys_publish_batches(
    api: GraphQLClient, services: Services, tenants: Tenants, subscribed: None
) -> None:
    # When a COMPANY key publishes a batch, even of its own company's events
    body = await api.post(
        PUBLISH_MANY, {"input": {"events": [event(tenants.a, 1)]}}, key=tenants.key_a
    )

    # Then it is FORBIDDEN and nothing is written
    [error] = body["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert body["data"] is None
    assert await counts(services) == (0, 0, 0)


async def test_more_than_100_events_are_refused_whole(
    api: GraphQLClient, services: Services, tenants: Tenants, subscribed: None
) -> None:
    # When 101 events are published at once
    payload = await publish_many(
        api, tenants.publisher, [event(tenants.a, number) for number in range(101)]
    )

    # Then one userError refuses the batch, and nothing is written
    assert payload["results"] == []
    [error] = payload["userErrors"]
    assert (error["field"], error["code"]) == (["input", "events"], "TOO_LARGE")
    assert "At most 100 events" in error["message"]
    assert await counts(services) == (0, 0, 0)


async def test_100_events_within_the_request_cap_are_all_published(
    api: GraphQLClient, services: Services, settings: Settings, tenants: Tenants, subscribed: None
) -> None:
    # Given 100 events whose request together just fits the request cap
    padding = "x" * (settings.max_request_bytes // 100 - 2048)
    batch = [
        event(tenants.a, number, payload=order_status_payload(order_id=number, notes=padding))
        for number in range(100)
    ]

    # When they are published in one call
    results = (await publish_many(api, tenants.publisher, batch))["results"]

    # Then all 100 are published, in order
    assert [result["event"]["subject"] for result in results] == [str(n) for n in range(100)]
    assert await counts(services) == (100, 100, 100)


async def test_100_events_of_the_largest_payload_get_413_and_nothing_is_stored(
    http: httpx.AsyncClient, services: Services, settings: Settings, tenants: Tenants
) -> None:
    # Given 100 events each of the largest accepted payload (far over the request cap)
    padding = "x" * (settings.max_payload_bytes - 4096)
    batch = [
        event(tenants.a, number, payload=order_status_payload(order_id=number, notes=padding))
        for number in range(100)
    ]

    # When they are posted in one call
    response = await http.post(
        "/graphql",
        json={"query": PUBLISH_MANY, "variables": {"input": {"events": batch}}},
        headers={"authorization": f"Bearer {tenants.publisher}"},
    )

    # Then the body is refused before anything is parsed or written
    assert response.status_code == 413
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "TOO_LARGE"
    assert await counts(services) == (0, 0, 0)


async def test_batches_holding_each_others_keys_both_succeed(
    api: GraphQLClient, services: Services, tenants: Tenants, subscribed: None
) -> None:
    # Given two batches that take the same two idempotency keys in opposite orders, with
    # twenty events between: each holds its first key when it reaches the other's, so
    # PostgreSQL finds a deadlock and ends one of them
    middle = 20
    first = [event(tenants.a, 1, idempotencyKey="k1")]
    first += [event(tenants.a, 100 + n) for n in range(middle)]
    first += [event(tenants.a, 2, idempotencyKey="k2")]
    second = [event(tenants.a, 2, idempotencyKey="k2")]
    second += [event(tenants.a, 200 + n) for n in range(middle)]
    second += [event(tenants.a, 1, idempotencyKey="k1")]

    # When both are published at once
    one, other = await asyncio.gather(
        publish_many(api, tenants.publisher, first), publish_many(api, tenants.publisher, second)
    )

    # Then both calls succeed, the loser started over: each key names one event in both
    ids = [[result["event"]["id"] for result in payload["results"]] for payload in (one, other)]
    assert ids[0][0] == ids[1][-1]  # k1
    assert ids[0][-1] == ids[1][0]  # k2
    assert await counts(services) == (2 + 2 * middle,) * 3
