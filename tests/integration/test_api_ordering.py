"""Ordered delivery through the API: the subscription's ordering, what HELD deliveries show
(their number, what they wait for), the HELD filter, live updates, and what is unordered.

No worker runs here unless a test says so: a delivery stays where publishing left it, and
a test ends one with a plain statement when it needs the next to go (any statement that
ends a delivery hands its queue on).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.core.settings import Settings
from app.domain.events import NewEvent
from app.store.services import Services
from tests.catalogue import add_webhook_type
from tests.integration.test_delivery_updates import connect, listening, updates_until
from tests.payloads import order_status_payload
from tests.service import GraphQLClient, Tenants, publish_event_with, served

CREATE = """
mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) {
    subscription { id ordering }
    userErrors { field code message }
  }
}"""
UPDATE = """
mutation($input: UpdateWebhookSubscriptionInput!) {
  updateWebhookSubscription(input: $input) {
    subscription { id ordering }
    userErrors { field code message }
  }
}"""
SUBSCRIPTION = "query($id: ID!) { webhookSubscription(id: $id) { id ordering } }"
PUBLISH = """
mutation($input: PublishEventInput!) {
  publishEvent(input: $input) { event { id deliveries { id status sequence } } userErrors { code } }
}"""
HELD_PAGE = """
query($id: ID!) {
  deliveries(filter: {status: HELD}) {
    nodes { id status sequence event { subject } waitingFor { id status sequence } }
  }
  webhookSubscription(id: $id) { deliveries(status: HELD) { nodes { id } } }
}"""
SEND_TEST = """
mutation($id: ID!) {
  sendTestEvent(subscriptionId: $id) { event { deliveries { id status sequence } } }
}"""
FOLLOW = "subscription { deliveryUpdates { id status sequence waitingFor { id } } }"


def new_subscription(path: str, **fields: Any) -> dict[str, Any]:
    return {
        "input": {
            "webhook": "ORDER_STATUS",
            "callbackUrl": f"http://127.0.0.1:9/{path}",
            "notificationEmail": "ops@example.com",
            **fields,
        }
    }


async def create(api: GraphQLClient, tenants: Tenants, path: str, **fields: Any) -> str:
    data = await api.data(CREATE, new_subscription(path, **fields), key=tenants.key_a)
    created = data["createWebhookSubscription"]
    assert created["userErrors"] == [], created
    return str(created["subscription"]["id"])


async def publish(
    api: GraphQLClient, tenants: Tenants, payload: dict[str, Any], webhook: str = "ORDER_STATUS"
) -> list[dict[str, Any]]:
    """Publish for company A; returns the event's deliveries."""
    data = await api.data(
        PUBLISH,
        {"input": {"companyId": tenants.a, "webhook": webhook, "payload": payload}},
        key=tenants.publisher,
    )
    assert data["publishEvent"]["userErrors"] == []
    deliveries: list[dict[str, Any]] = data["publishEvent"]["event"]["deliveries"]
    return deliveries


async def subscription_count(services: Services) -> int:
    async with services.db.pool.connection() as connection:
        cursor = await connection.execute("SELECT count(*) FROM subscriptions")
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def end(services: Services, delivery_id: str) -> None:
    """End a delivery as an attempt would (SUCCEEDED), by a plain statement."""
    async with services.db.pool.connection() as connection:
        await connection.execute(
            "UPDATE deliveries SET status = 'SUCCEEDED', completed_at = now() WHERE id = %s",
            (delivery_id,),
        )


async def test_ordering_is_none_unless_asked_for_and_changes_on_update(
    api: GraphQLClient, tenants: Tenants
) -> None:
    # When one subscription is created without ordering, one with null, one PER_SUBJECT
    plain = await create(api, tenants, "plain")
    null = await create(api, tenants, "null", ordering=None)
    ordered = await create(api, tenants, "ordered", ordering="PER_SUBJECT")

    # Then they read back NONE, NONE, PER_SUBJECT
    read = [
        (await api.data(SUBSCRIPTION, {"id": id_}, key=tenants.key_a))["webhookSubscription"]
        for id_ in (plain, null, ordered)
    ]
    assert [r["ordering"] for r in read] == ["NONE", "NONE", "PER_SUBJECT"]

    # And an update without ordering (or with null) keeps it; one with it changes it
    kept = await api.data(
        UPDATE, {"input": {"id": ordered, "description": "x", "ordering": None}}, key=tenants.key_a
    )
    changed = await api.data(
        UPDATE, {"input": {"id": plain, "ordering": "PER_SUBJECT"}}, key=tenants.key_a
    )
    assert kept["updateWebhookSubscription"]["subscription"]["ordering"] == "PER_SUBJECT"
    assert changed["updateWebhookSubscription"]["subscription"]["ordering"] == "PER_SUBJECT"


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        pytest.param(
            'mutation { createWebhookSubscription(input: {webhook: "ORDER_STATUS",'
            ' callbackUrl: "http://127.0.0.1:9/x", notificationEmail: "o@example.com",'
            " ordering: FIFO}) { subscription { id } } }",
            None,
            id="unknown-literal",
        ),
        pytest.param(
            'mutation { createWebhookSubscription(input: {webhook: "ORDER_STATUS",'
            ' callbackUrl: "http://127.0.0.1:9/x", notificationEmail: "o@example.com",'
            ' ordering: "PER_SUBJECT"}) { subscription { id } } }',
            None,
            id="string-literal",
        ),
        pytest.param(
            CREATE, new_subscription("x", ordering="per_subject"), id="lowercase-variable"
        ),
        pytest.param(CREATE, new_subscription("x", ordering=1), id="number-variable"),
    ],
)
async def test_an_ordering_that_is_not_one_of_the_enum_is_refused_and_nothing_written(
    api: GraphQLClient,
    services: Services,
    tenants: Tenants,
    document: str,
    variables: dict[str, Any] | None,
) -> None:
    # When a subscription is created with an ordering the enum does not have
    body = await api.post(document, variables, key=tenants.key_a)

    # Then the request is refused as the client's mistake (a validation error naming the
    # enum, not an unexpected one), and nothing is written
    assert body.get("data") is None, body
    assert body["errors"], body
    for error in body["errors"]:
        assert "DeliveryOrdering" in error["message"], body
        assert (error.get("extensions") or {}).get("code") != "INTERNAL_SERVER_ERROR", body
    assert await subscription_count(services) == 0


async def test_a_publisher_key_cannot_read_a_subscriptions_ordering(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given an ordered subscription and a delivery to it
    await create(api, tenants, "ordered", ordering="PER_SUBJECT")
    [delivery] = await publish(api, tenants, order_status_payload(order_id=7))

    # When the publisher reads the delivery's subscription's ordering, and its sequence
    configuration = await api.post(
        "query($id: ID!) { delivery(id: $id) { subscription { ordering } } }",
        {"id": delivery["id"]},
        key=tenants.publisher,
    )
    status = await api.data(
        "query($id: ID!) { delivery(id: $id) { status sequence } }",
        {"id": delivery["id"]},
        key=tenants.publisher,
    )

    # Then the ordering is configuration (FORBIDDEN), the delivery's number is not
    assert {e["extensions"]["code"] for e in configuration["errors"]} == {"FORBIDDEN"}
    assert status["delivery"] == {"status": "PENDING", "sequence": 1}


async def test_held_deliveries_are_listed_by_their_status_with_what_they_wait_for(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given an ordered subscription and an unordered one, and three events of one order
    ordered = await create(api, tenants, "ordered", ordering="PER_SUBJECT")
    await create(api, tenants, "plain")
    fanned = [await publish(api, tenants, order_status_payload(order_id=8, n=n)) for n in (1, 2, 3)]

    # When the held deliveries are listed
    page = await api.data(HELD_PAGE, {"id": ordered}, key=tenants.key_a)

    # Then they are the ordered subscription's second and third, both waiting for its
    # first (being sent); the unordered subscription's are all PENDING, unnumbered
    mine = [next(d for d in event if d["sequence"] is not None) for event in fanned]
    others = [next(d for d in event if d["sequence"] is None) for event in fanned]
    assert [(d["status"], d["sequence"]) for d in mine] == [
        ("PENDING", 1),
        ("HELD", 2),
        ("HELD", 3),
    ]
    assert {d["status"] for d in others} == {"PENDING"}
    head = {"id": mine[0]["id"], "status": "PENDING", "sequence": 1}
    assert sorted(page["deliveries"]["nodes"], key=lambda d: d["sequence"]) == [
        {
            "id": d["id"],
            "status": "HELD",
            "sequence": d["sequence"],
            "event": {"subject": "8"},
            "waitingFor": head,
        }
        for d in mine[1:]
    ]
    assert {n["id"] for n in page["webhookSubscription"]["deliveries"]["nodes"]} == {
        d["id"] for d in mine[1:]
    }


async def test_events_without_a_subject_and_test_events_are_never_held(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given a webhook whose events have no subject, and ordered subscriptions to it and
    # to ORDER_STATUS
    await add_webhook_type(services, "MEDIA_READY")
    media = await api.data(
        CREATE,
        {
            "input": {
                "webhook": "MEDIA_READY",
                "callbackUrl": "http://127.0.0.1:9/media",
                "notificationEmail": "ops@example.com",
                "ordering": "PER_SUBJECT",
            }
        },
        key=tenants.key_a,
    )
    assert media["createWebhookSubscription"]["userErrors"] == []
    orders = await create(api, tenants, "orders", ordering="PER_SUBJECT")

    # When two subject-less events are published, and two test events are sent
    untitled = [await publish(api, tenants, {"n": n}, webhook="MEDIA_READY") for n in (1, 2)]
    tests = [
        (await api.data(SEND_TEST, {"id": orders}, key=tenants.key_a))["sendTestEvent"]
        for _ in (1, 2)
    ]

    # Then all four go at once, unnumbered: no subject (and a test event asked for by
    # name) means no order to keep
    delivered = [d for event in untitled for d in event]
    delivered += [d for test in tests for d in test["event"]["deliveries"]]
    assert [(d["status"], d["sequence"]) for d in delivered] == [("PENDING", None)] * 4


async def test_live_updates_tell_a_delivery_held_and_then_let_go(
    settings: Settings, services: Services, api: GraphQLClient, tenants: Tenants
) -> None:
    # Given an ordered subscription, and its company following its deliveries live
    await create(api, tenants, "ordered", ordering="PER_SUBJECT")
    async with served(settings, services) as port:
        socket = await connect(f"ws://127.0.0.1:{port}/graphql", tenants.key_a, FOLLOW)
        try:
            await listening(services)

            # When two events of an order are published, and the first ends
            for n in (1, 2):
                await publish_event_with(
                    services,
                    NewEvent(tenants.a, "ORDER_STATUS", order_status_payload(order_id=9, n=n)),
                )
            told = await updates_until(socket, "HELD")
            first_id = str(told[0]["id"])
            await end(services, first_id)
            told += await updates_until(socket, "PENDING")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(socket.recv(), 0.5)
        finally:
            await socket.close()

    # Then the second was told HELD (waiting for the first), then PENDING once let go
    second_id = told[1]["id"]
    assert [(u["id"], u["status"], u["sequence"]) for u in told] == [
        (first_id, "PENDING", 1),
        (second_id, "HELD", 2),
        (first_id, "SUCCEEDED", 1),
        (second_id, "PENDING", 2),
    ]
    assert told[1]["waitingFor"] == {"id": first_id}
    assert told[3]["waitingFor"] is None
