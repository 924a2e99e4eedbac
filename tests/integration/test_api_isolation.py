"""Tenant isolation: another company's id is indistinguishable from a missing one.

For every query and mutation taking an id, company B using company A's id gets exactly
the response a random, never-issued id gets (null or NOT_FOUND), nothing of A's changes,
and A itself, with the same document, does find the row. Lists never mix companies.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from app.store.services import Services
from tests.payloads import order_status_payload
from tests.service import GraphQLClient, Tenants

CREATE = """
mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) { subscription { id } userErrors { code } }
}"""
PUBLISH = """
mutation($input: PublishEventInput!) {
  publishEvent(input: $input) { event { id deliveries { id } } userErrors { code } }
}"""
USER_ERRORS = "userErrors { field code message }"

# name -> (document, variables for an id, which id of A's world it takes)
CASES: dict[str, tuple[str, Any, str]] = {
    "webhookSubscription": (
        "query($id: ID!) { webhookSubscription(id: $id) { id callbackUrl } }",
        lambda id: {"id": id},
        "subscription",
    ),
    "WebhookSubscription.filter": (
        "query($id: ID!) { webhookSubscription(id: $id) { id filter } }",
        lambda id: {"id": id},
        "subscription",
    ),
    "testSubscriptionFilter": (
        "query($id: ID!) { testSubscriptionFilter(subscriptionId: $id) {"
        f" matched reasons mismatches {{ clause reason }} {USER_ERRORS} }} }}",
        lambda id: {"id": id},
        "subscription",
    ),
    "WebhookSubscription.deliveries": (
        "query($id: ID!) { webhookSubscription(id: $id) { deliveries { nodes { id } } } }",
        lambda id: {"id": id},
        "subscription",
    ),
    "event": (
        "query($id: ID!) { event(id: $id) { id payload } }",
        lambda id: {"id": id},
        "event",
    ),
    "Event.deliveries": (
        "query($id: ID!) { event(id: $id) { deliveries { id } } }",
        lambda id: {"id": id},
        "event",
    ),
    "delivery": (
        "query($id: ID!) { delivery(id: $id) { id event { id } subscription { id } } }",
        lambda id: {"id": id},
        "delivery",
    ),
    "deliveries-by-subscriptionId": (
        "query($id: ID!) { deliveries(filter: {subscriptionId: $id}) { nodes { id } } }",
        lambda id: {"id": id},
        "subscription",
    ),
    "deliveries-by-eventId": (
        "query($id: ID!) { deliveries(filter: {eventId: $id}) { nodes { id } } }",
        lambda id: {"id": id},
        "event",
    ),
    "WebhookSubscription.ordering": (
        "query($id: ID!) { webhookSubscription(id: $id) { id ordering } }",
        lambda id: {"id": id},
        "subscription",
    ),
    "Delivery.waitingFor": (
        "query($id: ID!) { delivery(id: $id) { id sequence waitingFor { id } } }",
        lambda id: {"id": id},
        "delivery",
    ),
    "updateWebhookSubscription-ordering": (
        "mutation($input: UpdateWebhookSubscriptionInput!) {"
        " updateWebhookSubscription(input: $input) {"
        f" subscription {{ id ordering }} {USER_ERRORS} }} }}",
        lambda id: {"input": {"id": id, "ordering": "PER_SUBJECT"}},
        "subscription",
    ),
    "WebhookSubscription.headers": (
        "query($id: ID!) { webhookSubscription(id: $id) { id headers { name valueHint } } }",
        lambda id: {"id": id},
        "subscription",
    ),
    "updateWebhookSubscription-headers": (
        "mutation($input: UpdateWebhookSubscriptionInput!) {"
        " updateWebhookSubscription(input: $input) {"
        f" subscription {{ id headers {{ name valueHint }} }} {USER_ERRORS} }} }}",
        lambda id: {
            "input": {
                "id": id,
                "headers": [{"name": "Authorization", "value": "Bearer taken-over"}],
            }
        },
        "subscription",
    ),
    "WebhookSubscription.maxDeliveriesPerSecond": (
        "query($id: ID!) { webhookSubscription(id: $id) { id maxDeliveriesPerSecond } }",
        lambda id: {"id": id},
        "subscription",
    ),
    "updateWebhookSubscription-rate": (
        "mutation($input: UpdateWebhookSubscriptionInput!) {"
        " updateWebhookSubscription(input: $input) {"
        f" subscription {{ id maxDeliveriesPerSecond }} {USER_ERRORS} }} }}",
        lambda id: {"input": {"id": id, "maxDeliveriesPerSecond": 1000}},
        "subscription",
    ),
    "updateWebhookSubscription-rate-removed": (
        "mutation($input: UpdateWebhookSubscriptionInput!) {"
        f" updateWebhookSubscription(input: $input) {{ subscription {{ id }} {USER_ERRORS} }} }}",
        lambda id: {"input": {"id": id, "maxDeliveriesPerSecond": None}},
        "subscription",
    ),
    "updateWebhookSubscription": (
        "mutation($input: UpdateWebhookSubscriptionInput!) {"
        f" updateWebhookSubscription(input: $input) {{ subscription {{ id }} {USER_ERRORS} }} }}",
        lambda id: {
            "input": {
                "id": id,
                "isActive": False,
                "description": "taken over",
                "filter": {"order_status": "taken over"},
            }
        },
        "subscription",
    ),
    "deleteWebhookSubscription": (
        "mutation($id: ID!) {"
        f" deleteWebhookSubscription(id: $id) {{ deletedId {USER_ERRORS} }} }}",
        lambda id: {"id": id},
        "subscription",
    ),
    "rotateWebhookSubscriptionSecret": (
        "mutation($id: ID!) { rotateWebhookSubscriptionSecret(id: $id) {"
        f" subscription {{ id }} signingSecret {USER_ERRORS} }} }}",
        lambda id: {"id": id},
        "subscription",
    ),
    "sendTestEvent": (
        "mutation($id: ID!) {"
        f" sendTestEvent(subscriptionId: $id) {{ event {{ id }} {USER_ERRORS} }} }}",
        lambda id: {"id": id},
        "subscription",
    ),
    "redeliver": (
        "mutation($id: ID!) {"
        f" redeliver(deliveryId: $id) {{ delivery {{ id status }} {USER_ERRORS} }} }}",
        lambda id: {"id": id},
        "delivery",
    ),
    "redeliverFailed": (
        "mutation($id: ID!) { redeliverFailed(subscriptionId: $id,"
        f' since: "2000-01-01T00:00:00Z") {{ count {USER_ERRORS} }} }}',
        lambda id: {"id": id},
        "subscription",
    ),
}

# What company A can see of its own world; must not change when B pokes at it.
A_SNAPSHOT = """
query($id: ID!) {
  webhookSubscription(id: $id) {
    id callbackUrl notificationEmail isActive description updatedAt
    headers { name valueHint }
    id callbackUrl notificationEmail isActive description updatedAt filter
    maxDeliveriesPerSecond ordering
    deliveries { nodes { id status cycle attemptCount } }
  }
  events { nodes { id isTest } }
  deliveries { nodes { id status cycle } }
}"""
LISTS = {
    "webhookSubscriptions": "query { webhookSubscriptions(first: 100) { nodes { id } } }",
    "events": "query { events(first: 100) { nodes { id } } }",
    "deliveries": "query { deliveries(first: 100) { nodes { id } } }",
}


# Each world's subscription carries a filter (its event passes it): company B must
# neither see A's nor test it.
WORLD_FILTER = {"order_status": {"$ne": "cancelled"}}
# ...and a delivery rate: B must neither see A's nor set it (up or off).
WORLD_RATE = 3


@dataclass(frozen=True)
class World:
    """One company's subscription, and an event with a FAILED delivery to it."""

    subscription: str
    event: str
    delivery: str

    def ids(self) -> set[str]:
        return {self.subscription, self.event, self.delivery}


async def sql(services: Services, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run SQL as the owner (test set-up and checks only)."""
    async with services.db.pool.connection() as connection:
        cursor = await connection.execute(statement, params)
        return await cursor.fetchall() if cursor.description else []


async def build_world(
    api: GraphQLClient, services: Services, tenants: Tenants, company: str, key: str
) -> World:
    created = await api.data(
        CREATE,
        {
            "input": {
                "webhook": "ORDER_STATUS",
                "callbackUrl": "http://127.0.0.1:9/hook",
                "notificationEmail": "ops@example.com",
                "headers": [{"name": "Authorization", "value": f"Bearer {company}-0123456789"}],
                "filter": WORLD_FILTER,
                "maxDeliveriesPerSecond": WORLD_RATE,
            }
        },
        key=key,
    )
    subscription = created["createWebhookSubscription"]["subscription"]["id"]
    published = await api.data(
        PUBLISH,
        {
            "input": {
                "companyId": company,
                "webhook": "ORDER_STATUS",
                "payload": order_status_payload(of=company),
            }
        },
        key=tenants.publisher,
    )
    event = published["publishEvent"]["event"]
    [delivery] = [item["id"] for item in event["deliveries"]]
    # Finished, so that A's own redeliver and redeliverFailed succeed.
    await sql(services, "UPDATE deliveries SET status = 'FAILED' WHERE id = %s", delivery)
    return World(subscription, event["id"], delivery)


@pytest.fixture
async def worlds(api: GraphQLClient, services: Services, tenants: Tenants) -> tuple[World, World]:
    """Company A's world and company B's."""
    world_a = await build_world(api, services, tenants, tenants.a, tenants.key_a)
    world_b = await build_world(api, services, tenants, tenants.b, tenants.key_b)
    return world_a, world_b


def hides_the_row(data: dict[str, Any]) -> bool:
    """Whether a response's single root field says "nothing there"."""
    [result] = data.values()
    if result is None:
        return True
    if "nodes" in result:
        return not result["nodes"]
    codes = [error["code"] for error in result.get("userErrors", [])]
    return codes == ["NOT_FOUND"]


async def job_count(services: Services) -> int:
    [(count,)] = await sql(services, "SELECT count(*) FROM procrastinate_jobs")
    return int(count)


@pytest.mark.parametrize("case", list(CASES))
async def test_another_companys_id_is_like_a_missing_one(
    api: GraphQLClient,
    services: Services,
    tenants: Tenants,
    worlds: tuple[World, World],
    case: str,
) -> None:
    document, variables, kind = CASES[case]
    world_a, _ = worlds
    a_id = getattr(world_a, kind)
    before = await api.data(A_SNAPSHOT, {"id": world_a.subscription}, key=tenants.key_a)
    jobs_before = await job_count(services)

    # When company B uses A's id, and then an id that never existed
    with_a_id = await api.post(document, variables(a_id), key=tenants.key_b)
    with_missing_id = await api.post(document, variables(str(uuid.uuid4())), key=tenants.key_b)

    # Then both responses are the same, and say "not there"
    assert with_a_id == with_missing_id
    assert "errors" not in with_a_id, with_a_id
    assert hides_the_row(with_a_id["data"]), with_a_id
    # ...and nothing of A's changed, nor was anything queued
    after = await api.data(A_SNAPSHOT, {"id": world_a.subscription}, key=tenants.key_a)
    assert after == before
    assert await job_count(services) == jobs_before

    # While A, with the same document and id, does reach the row
    own = await api.post(document, variables(a_id), key=tenants.key_a)
    assert "errors" not in own, own
    assert not hides_the_row(own["data"]), own


# A malformed id in a list filter is BAD_USER_INPUT instead (see test_api_deliveries).
LOOKUPS = [name for name, (document, _, _) in CASES.items() if "filter:" not in document]


@pytest.mark.parametrize("case", LOOKUPS)
async def test_a_malformed_id_is_like_a_missing_one_too(
    api: GraphQLClient, tenants: Tenants, worlds: tuple[World, World], case: str
) -> None:
    document, variables, _ = CASES[case]

    malformed = await api.post(document, variables("not-an-id"), key=tenants.key_b)
    missing = await api.post(document, variables(str(uuid.uuid4())), key=tenants.key_b)

    assert malformed == missing


@pytest.mark.parametrize("listing", list(LISTS))
async def test_lists_never_contain_another_companys_rows(
    api: GraphQLClient, tenants: Tenants, worlds: tuple[World, World], listing: str
) -> None:
    world_a, world_b = worlds

    ids_b = {
        node["id"] for node in (await api.data(LISTS[listing], key=tenants.key_b))[listing]["nodes"]
    }
    ids_a = {
        node["id"] for node in (await api.data(LISTS[listing], key=tenants.key_a))[listing]["nodes"]
    }

    assert ids_b and ids_b <= world_b.ids()
    assert ids_a and ids_a <= world_a.ids()
    assert not ids_b & world_a.ids()


async def test_published_events_reach_only_their_own_company(
    api: GraphQLClient, tenants: Tenants, worlds: tuple[World, World]
) -> None:
    # Given the publisher published one event for A and one for B (the worlds)
    world_a, world_b = worlds
    query = """
    query {
      events { nodes { id company { id } deliveries { id subscription { id } } } }
      deliveries { nodes { id event { id } } }
    }"""

    # When each company reads its events and deliveries
    for world, key, company in (
        (world_a, tenants.key_a, tenants.a),
        (world_b, tenants.key_b, tenants.b),
    ):
        data = await api.data(query, key=key)

        # Then it sees exactly its own event, delivered to its own subscription
        assert data["events"]["nodes"] == [
            {
                "id": world.event,
                "company": {"id": company},
                "deliveries": [{"id": world.delivery, "subscription": {"id": world.subscription}}],
            }
        ]
        assert data["deliveries"]["nodes"] == [{"id": world.delivery, "event": {"id": world.event}}]

    # While the publisher sees both
    everything = await api.data(query, key=tenants.publisher)
    assert {node["id"] for node in everything["events"]["nodes"]} == {world_a.event, world_b.event}


PUBLISHER_STATUSES = """
query { deliveries { nodes { id status attemptCount subscription { id isActive } } } }"""
PUBLISHER_CONFIGURATION = """
query { deliveries { nodes { id subscription { id callbackUrl notificationEmail } } } }"""


async def test_the_publisher_reads_every_companys_statuses_but_no_ones_configuration(
    api: GraphQLClient, tenants: Tenants, worlds: tuple[World, World]
) -> None:
    # Given both companies' worlds (each with a callback URL and a notification email)
    world_a, world_b = worlds

    # When the publisher reads the deliveries' statuses, and then their configuration
    statuses = await api.data(PUBLISHER_STATUSES, key=tenants.publisher)
    configuration = await api.post(PUBLISHER_CONFIGURATION, key=tenants.publisher)

    # Then it sees both companies' deliveries and the subscriptions they went to...
    assert {
        (node["id"], node["status"], node["subscription"]["id"])
        for node in statuses["deliveries"]["nodes"]
    } == {(w.delivery, "FAILED", w.subscription) for w in (world_a, world_b)}
    # ...and the configuration of neither: FORBIDDEN, with nothing of it in the answer
    assert {error["extensions"]["code"] for error in configuration["errors"]} == {"FORBIDDEN"}
    assert configuration["data"] is None
    assert "ops@example.com" not in str(configuration)
    assert "127.0.0.1:9/hook" not in str(configuration)


ORDERED = """
mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) { subscription { id } userErrors { code } }
}"""
HELD = """
query($id: ID!) {
  delivery(id: $id) { id status waitingFor { id } }
  deliveries(filter: {status: HELD}) { nodes { id waitingFor { id } } }
}"""


async def held_world(api: GraphQLClient, tenants: Tenants, company: str, key: str) -> list[str]:
    """An ordered subscription of ``company`` with two events of one order: the first
    being sent, the second HELD behind it; returns their delivery ids."""
    created = await api.data(
        ORDERED,
        {
            "input": {
                "webhook": "ORDER_STATUS",
                "callbackUrl": "http://127.0.0.1:9/ordered",
                "notificationEmail": "ops@example.com",
                "ordering": "PER_SUBJECT",
            }
        },
        key=key,
    )
    assert created["createWebhookSubscription"]["userErrors"] == []
    ids = []
    for n in (1, 2):
        published = await api.data(
            PUBLISH,
            {
                "input": {
                    "companyId": company,
                    "webhook": "ORDER_STATUS",
                    "payload": order_status_payload(order_id=55, n=n),
                }
            },
            key=tenants.publisher,
        )
        [delivery] = published["publishEvent"]["event"]["deliveries"]
        ids.append(delivery["id"])
    return ids


async def test_another_companys_held_delivery_and_what_it_waits_for_stay_hidden(
    api: GraphQLClient, tenants: Tenants
) -> None:
    # Given in both companies an order's second event HELD behind its first (the same
    # order id, so the same subject, in each)
    head_a, held_a = await held_world(api, tenants, tenants.a, tenants.key_a)
    head_b, held_b = await held_world(api, tenants, tenants.b, tenants.key_b)

    # When company B asks for A's held delivery, and for an id that never existed
    with_a_id = await api.data(HELD, {"id": held_a}, key=tenants.key_b)
    with_missing_id = await api.data(HELD, {"id": str(uuid.uuid4())}, key=tenants.key_b)

    # Then both answers are the same: no such delivery, and only B's own held one, which
    # waits for B's head, never A's
    assert with_a_id == with_missing_id
    assert with_a_id == {
        "delivery": None,
        "deliveries": {"nodes": [{"id": held_b, "waitingFor": {"id": head_b}}]},
    }
    # while A sees its own, waiting for its own head
    own = await api.data(HELD, {"id": held_a}, key=tenants.key_a)
    assert own["delivery"] == {"id": held_a, "status": "HELD", "waitingFor": {"id": head_a}}
