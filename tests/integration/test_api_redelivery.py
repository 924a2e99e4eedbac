"""Redelivery, test events and secret rotation through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.domain import redelivery
from app.domain.events import TEST_ORDER_ID
from app.store.services import Services
from tests.payloads import order_status_payload
from tests.service import GraphQLClient, Tenants

CREATE = """
mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) { subscription { id } signingSecret userErrors { code } }
}"""
UPDATE = """
mutation($input: UpdateWebhookSubscriptionInput!) {
  updateWebhookSubscription(input: $input) { userErrors { code } }
}"""
DELETE = """
mutation($id: ID!) { deleteWebhookSubscription(id: $id) { userErrors { code } } }"""
PUBLISH = """
mutation($input: PublishEventInput!) {
  publishEvent(input: $input) { event { id deliveries { id } } userErrors { code } }
}"""
DELIVERY_FIELDS = "id webhookId status cycle attemptCount completedAt event { id }"
REDELIVER = f"""
mutation($id: ID!) {{
  redeliver(deliveryId: $id) {{
    delivery {{ {DELIVERY_FIELDS} }}
    userErrors {{ field code message }}
  }}
}}"""
REDELIVER_FAILED = """
mutation($id: ID!, $since: DateTime!) {
  redeliverFailed(subscriptionId: $id, since: $since) { count userErrors { field code message } }
}"""
SEND_TEST = """
mutation($id: ID!) {
  sendTestEvent(subscriptionId: $id) {
    event {
      id isTest subject payload webhook { key samplePayload } company { id }
      deliveries { id status subscription { id } }
    }
    userErrors { field code message }
  }
}"""
ROTATE = """
mutation($id: ID!) {
  rotateWebhookSubscriptionSecret(id: $id) {
    subscription { id callbackUrl }
    signingSecret
    userErrors { field code message }
  }
}"""
DELIVERY = f"query($id: ID!) {{ delivery(id: $id) {{ {DELIVERY_FIELDS} }} }}"
LONG_AGO = "2000-01-01T00:00:00Z"


async def sql(services: Services, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run SQL as the owner (test set-up and checks only)."""
    async with services.db.pool.connection() as connection:
        cursor = await connection.execute(statement, params)
        return await cursor.fetchall() if cursor.description else []


async def subscribe(api: GraphQLClient, key: str, path: str = "hook") -> tuple[str, str]:
    """Create an ORDER_STATUS subscription; returns its id and signing secret."""
    data = await api.data(
        CREATE,
        {
            "input": {
                "webhook": "ORDER_STATUS",
                "callbackUrl": f"http://127.0.0.1:9/{path}",
                "notificationEmail": "ops@example.com",
            }
        },
        key=key,
    )
    payload = data["createWebhookSubscription"]
    return payload["subscription"]["id"], payload["signingSecret"]


async def publish(api: GraphQLClient, tenants: Tenants, company: str) -> list[str]:
    """Publish an ORDER_STATUS event; returns its deliveries' ids."""
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
    return [delivery["id"] for delivery in data["publishEvent"]["event"]["deliveries"]]


async def set_status(services: Services, delivery_id: str, status: str) -> None:
    await sql(
        services,
        "UPDATE deliveries SET status = %s, attempt_count = 3, last_response_status = 500,"
        " completed_at = CASE WHEN %s IN ('SUCCEEDED', 'FAILED', 'CANCELLED') THEN now() END"
        " WHERE id = %s",
        status,
        status,
        delivery_id,
    )


async def jobs_of(services: Services, delivery_id: str) -> list[dict[str, Any]]:
    rows = await sql(
        services,
        "SELECT args FROM procrastinate_jobs WHERE lock = %s ORDER BY id",
        delivery_id,
    )
    return [row[0] for row in rows]


def errors_of(payload: dict[str, Any]) -> list[tuple[list[str], str]]:
    return [(error["field"], error["code"]) for error in payload["userErrors"]]


# --- redeliver ------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["PENDING", "RETRYING"])
async def test_redeliver_refuses_a_delivery_in_progress(
    api: GraphQLClient, services: Services, tenants: Tenants, status: str
) -> None:
    # Given a delivery still being attempted
    await subscribe(api, tenants.key_a)
    [delivery_id] = await publish(api, tenants, tenants.a)
    if status != "PENDING":
        await sql(services, "UPDATE deliveries SET status = %s WHERE id = %s", status, delivery_id)

    # When it is redelivered
    payload = (await api.data(REDELIVER, {"id": delivery_id}, key=tenants.key_a))["redeliver"]

    # Then it is refused as INVALID, and no second job is queued
    assert payload["delivery"] is None
    assert errors_of(payload) == [(["deliveryId"], "INVALID")]
    assert "in progress" in payload["userErrors"][0]["message"]
    assert len(await jobs_of(services, delivery_id)) == 1


@pytest.mark.parametrize("status", ["FAILED", "SUCCEEDED", "CANCELLED"])
async def test_redeliver_restarts_a_finished_delivery_in_a_new_cycle(
    api: GraphQLClient, services: Services, tenants: Tenants, status: str
) -> None:
    # Given a finished delivery
    await subscribe(api, tenants.key_a)
    [delivery_id] = await publish(api, tenants, tenants.a)
    await set_status(services, delivery_id, status)
    before = (await api.data(DELIVERY, {"id": delivery_id}, key=tenants.key_a))["delivery"]

    # When it is redelivered
    payload = (await api.data(REDELIVER, {"id": delivery_id}, key=tenants.key_a))["redeliver"]

    # Then it starts cycle 2, pending, with the same webhook-id and event
    assert payload["userErrors"] == []
    delivery = payload["delivery"]
    assert delivery["id"] == delivery_id
    assert (delivery["status"], delivery["cycle"], delivery["attemptCount"]) == ("PENDING", 2, 0)
    assert delivery["completedAt"] is None
    assert delivery["webhookId"] == before["webhookId"]
    assert delivery["event"] == before["event"]
    # ...and attempt 1 of cycle 2 is queued beside the original job
    assert await jobs_of(services, delivery_id) == [
        {"delivery_id": delivery_id, "cycle": 1, "attempt": 1},
        {"delivery_id": delivery_id, "cycle": 2, "attempt": 1},
    ]


async def test_redeliver_refuses_a_delivery_of_a_deleted_subscription(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    subscription_id, _ = await subscribe(api, tenants.key_a)
    [delivery_id] = await publish(api, tenants, tenants.a)
    await set_status(services, delivery_id, "FAILED")
    await api.data(DELETE, {"id": subscription_id}, key=tenants.key_a)

    payload = (await api.data(REDELIVER, {"id": delivery_id}, key=tenants.key_a))["redeliver"]

    assert errors_of(payload) == [(["deliveryId"], "INVALID")]
    assert "deleted or inactive" in payload["userErrors"][0]["message"]
    after = (await api.data(DELIVERY, {"id": delivery_id}, key=tenants.key_a))["delivery"]
    assert (after["status"], after["cycle"]) == ("FAILED", 1)


@pytest.mark.parametrize("missing", ["00000000-0000-4000-8000-000000000000", "garbage"])
async def test_redeliver_of_a_missing_delivery_is_not_found(
    api: GraphQLClient, tenants: Tenants, missing: str
) -> None:
    payload = (await api.data(REDELIVER, {"id": missing}, key=tenants.key_a))["redeliver"]

    assert errors_of(payload) == [(["deliveryId"], "NOT_FOUND")]


# --- redeliverFailed ------------------------------------------------------------------


async def test_redeliver_failed_restarts_the_failed_deliveries_since_a_moment(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given five deliveries to one subscription: three FAILED (one of them old), one
    # pending and one succeeded; and a FAILED delivery to another subscription
    subscription_id, _ = await subscribe(api, tenants.key_a, "main")
    ids = [(await publish(api, tenants, tenants.a))[0] for _ in range(5)]
    old_failed, failed_1, failed_2, pending, succeeded = ids
    for delivery_id in (old_failed, failed_1, failed_2):
        await set_status(services, delivery_id, "FAILED")
    await set_status(services, succeeded, "SUCCEEDED")
    await sql(
        services,
        "UPDATE deliveries SET created_at = now() - interval '2 days' WHERE id = %s",
        old_failed,
    )
    other_subscription, _ = await subscribe(api, tenants.key_a, "other")
    await publish(api, tenants, tenants.a)  # reaches both subscriptions
    other = [
        row[0]
        for row in await sql(
            services,
            "SELECT id::text FROM deliveries WHERE subscription_id = %s",
            other_subscription,
        )
    ]
    for delivery_id in other:
        await set_status(services, delivery_id, "FAILED")
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()

    # When the subscription's failures since yesterday are redelivered
    data = await api.data(
        REDELIVER_FAILED, {"id": subscription_id, "since": since}, key=tenants.key_a
    )

    # Then the two recent failures restart, and nothing else changes
    assert data["redeliverFailed"] == {"count": 2, "userErrors": []}
    statuses = {}
    for delivery_id in [*ids, *other]:
        delivery = (await api.data(DELIVERY, {"id": delivery_id}, key=tenants.key_a))["delivery"]
        statuses[delivery_id] = (delivery["status"], delivery["cycle"])
    assert statuses == {
        old_failed: ("FAILED", 1),
        failed_1: ("PENDING", 2),
        failed_2: ("PENDING", 2),
        pending: ("PENDING", 1),
        succeeded: ("SUCCEEDED", 1),
        **{delivery_id: ("FAILED", 1) for delivery_id in other},
    }
    for delivery_id in (failed_1, failed_2):
        assert (await jobs_of(services, delivery_id))[-1] == {
            "delivery_id": delivery_id,
            "cycle": 2,
            "attempt": 1,
        }

    # And a second call finds nothing left to restart
    again = await api.data(
        REDELIVER_FAILED, {"id": subscription_id, "since": since}, key=tenants.key_a
    )
    assert again["redeliverFailed"]["count"] == 0


REDELIVER_ALL_FAILED = """
mutation($since: DateTime!) {
  redeliverFailed(since: $since) { count userErrors { field code message } }
}"""


@pytest.mark.parametrize("batch_size", [redelivery.BATCH_SIZE, 2], ids=["one-batch", "batches"])
async def test_redeliver_failed_without_a_subscription_restarts_the_companys_failures_since(
    api: GraphQLClient,
    services: Services,
    tenants: Tenants,
    monkeypatch: pytest.MonkeyPatch,
    batch_size: int,
) -> None:
    # Given company A's subscriptions: two active, one deactivated and one deleted (their
    # failures can be sent nowhere), and company B's; each with FAILED deliveries, two
    # of them old; and one of A's deliveries still pending
    monkeypatch.setattr(redelivery, "BATCH_SIZE", batch_size)
    paths = ("one", "two", "inactive", "deleted")
    subscriptions = {path: (await subscribe(api, tenants.key_a, path))[0] for path in paths}
    await subscribe(api, tenants.key_b, "b")
    for company in (tenants.a, tenants.a, tenants.b, tenants.b):
        await publish(api, tenants, company)
    rows = await sql(
        services,
        "SELECT d.id::text, s.callback_url FROM deliveries d"
        " JOIN subscriptions s ON s.id = d.subscription_id ORDER BY d.created_at, d.id",
    )
    for delivery_id, _ in rows:
        await set_status(services, delivery_id, "FAILED")
    old = [
        next(delivery_id for delivery_id, url in rows if url.endswith(ending))
        for ending in ("/one", "/b")
    ]
    await sql(
        services,
        "UPDATE deliveries SET created_at = now() - interval '2 days' WHERE id = ANY(%s::uuid[])",
        old,
    )
    still_open = await publish(api, tenants, tenants.a)  # one to each of A's four
    await api.data(
        UPDATE, {"input": {"id": subscriptions["inactive"], "isActive": False}}, key=tenants.key_a
    )
    await api.data(DELETE, {"id": subscriptions["deleted"]}, key=tenants.key_a)
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()

    # When company A redelivers every failure since yesterday, naming no subscription
    data = await api.data(REDELIVER_ALL_FAILED, {"since": since}, key=tenants.key_a)

    # Then its recent failures to its active subscriptions restart, and nothing else
    restartable = {
        delivery_id
        for delivery_id, url in rows
        if url.rsplit("/", 1)[1] in ("one", "two") and delivery_id not in old
    }
    assert len(restartable) == 3
    assert data["redeliverFailed"] == {"count": 3, "userErrors": []}
    statuses = dict(await sql(services, "SELECT id::text, status || ' ' || cycle FROM deliveries"))
    assert {delivery_id: statuses[delivery_id] for delivery_id, _ in rows} == {
        delivery_id: "PENDING 2" if delivery_id in restartable else "FAILED 1"
        for delivery_id, _ in rows
    }
    # (the open ones as they were: pending, or cancelled with their subscription)
    assert sorted(statuses[delivery_id] for delivery_id in still_open) == [
        "CANCELLED 1",
        "CANCELLED 1",
        "PENDING 1",
        "PENDING 1",
    ]
    for delivery_id in restartable:
        assert (await jobs_of(services, delivery_id))[-1]["cycle"] == 2
    # And a second call finds nothing left to restart
    again = await api.data(REDELIVER_ALL_FAILED, {"since": since}, key=tenants.key_a)
    assert again["redeliverFailed"]["count"] == 0


async def test_redeliver_failed_with_nothing_failed_counts_zero(
    api: GraphQLClient, tenants: Tenants
) -> None:
    subscription_id, _ = await subscribe(api, tenants.key_a)
    await publish(api, tenants, tenants.a)

    data = await api.data(
        REDELIVER_FAILED, {"id": subscription_id, "since": LONG_AGO}, key=tenants.key_a
    )

    assert data["redeliverFailed"] == {"count": 0, "userErrors": []}


async def test_redeliver_failed_refuses_an_inactive_subscription(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    subscription_id, _ = await subscribe(api, tenants.key_a)
    [delivery_id] = await publish(api, tenants, tenants.a)
    await set_status(services, delivery_id, "FAILED")
    await api.data(UPDATE, {"input": {"id": subscription_id, "isActive": False}}, key=tenants.key_a)

    data = await api.data(
        REDELIVER_FAILED, {"id": subscription_id, "since": LONG_AGO}, key=tenants.key_a
    )

    assert data["redeliverFailed"]["count"] == 0
    assert errors_of(data["redeliverFailed"]) == [(["subscriptionId"], "INVALID")]


@pytest.mark.parametrize("missing", ["00000000-0000-4000-8000-000000000000", "garbage"])
async def test_redeliver_failed_of_a_missing_subscription_is_not_found(
    api: GraphQLClient, tenants: Tenants, missing: str
) -> None:
    data = await api.data(REDELIVER_FAILED, {"id": missing, "since": LONG_AGO}, key=tenants.key_a)

    assert errors_of(data["redeliverFailed"]) == [(["subscriptionId"], "NOT_FOUND")]


# --- sendTestEvent --------------------------------------------------------------------


async def test_send_test_event_delivers_the_sample_to_that_subscription_only(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given two active subscriptions of the same webhook
    target, _ = await subscribe(api, tenants.key_a, "target")
    await subscribe(api, tenants.key_a, "bystander")

    # When a test event is sent to one of them
    data = await api.data(SEND_TEST, {"id": target}, key=tenants.key_a)

    # Then a test event with the webhook's sample payload as it is, and a subject that is
    # obviously no order id, has one delivery, to the target
    payload = data["sendTestEvent"]
    assert payload["userErrors"] == []
    event = payload["event"]
    assert event["isTest"] is True
    assert event["company"] == {"id": tenants.a}
    assert event["webhook"]["key"] == "ORDER_STATUS"
    assert event["payload"] == event["webhook"]["samplePayload"]
    assert event["subject"] == TEST_ORDER_ID
    [delivery] = event["deliveries"]
    assert delivery["subscription"] == {"id": target}
    assert delivery["status"] == "PENDING"
    # ...whose first attempt is queued
    assert await jobs_of(services, delivery["id"]) == [
        {"delivery_id": delivery["id"], "cycle": 1, "attempt": 1}
    ]


async def test_a_test_event_is_not_an_order_event(api: GraphQLClient, tenants: Tenants) -> None:
    # Published events are not tests; test events are marked so receivers can tell.
    target, _ = await subscribe(api, tenants.key_a)
    await publish(api, tenants, tenants.a)
    await api.data(SEND_TEST, {"id": target}, key=tenants.key_a)

    data = await api.data("query { events { nodes { isTest } } }", key=tenants.key_a)

    assert sorted(node["isTest"] for node in data["events"]["nodes"]) == [False, True]


async def test_send_test_event_refuses_an_inactive_subscription(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    target, _ = await subscribe(api, tenants.key_a)
    await api.data(UPDATE, {"input": {"id": target, "isActive": False}}, key=tenants.key_a)

    data = await api.data(SEND_TEST, {"id": target}, key=tenants.key_a)

    assert data["sendTestEvent"]["event"] is None
    assert errors_of(data["sendTestEvent"]) == [(["subscriptionId"], "INVALID")]
    assert await sql(services, "SELECT count(*) FROM events") == [(0,)]


@pytest.mark.parametrize("missing", ["00000000-0000-4000-8000-000000000000", "garbage"])
async def test_send_test_event_to_a_missing_subscription_is_not_found(
    api: GraphQLClient, tenants: Tenants, missing: str
) -> None:
    data = await api.data(SEND_TEST, {"id": missing}, key=tenants.key_a)

    assert errors_of(data["sendTestEvent"]) == [(["subscriptionId"], "NOT_FOUND")]


# --- rotateWebhookSubscriptionSecret --------------------------------------------------


async def test_rotation_returns_a_new_secret_and_keeps_the_old_one_for_a_day(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given a subscription and the secret it was created with
    subscription_id, first_secret = await subscribe(api, tenants.key_a)
    [(stored_before,)] = await sql(
        services, "SELECT signing_secret FROM subscriptions WHERE id = %s", subscription_id
    )

    # When its secret is rotated
    payload = (await api.data(ROTATE, {"id": subscription_id}, key=tenants.key_a))[
        "rotateWebhookSubscriptionSecret"
    ]

    # Then a new whsec_ secret comes back with the subscription
    assert payload["userErrors"] == []
    assert payload["subscription"]["id"] == subscription_id
    new_secret = payload["signingSecret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != first_secret
    # ...and the previous secret is kept (encrypted) to sign alongside for 24 hours
    [(previous, expires_in)] = await sql(
        services,
        "SELECT previous_signing_secret, previous_secret_expires_at - now()"
        " FROM subscriptions WHERE id = %s",
        subscription_id,
    )
    assert previous == stored_before
    assert timedelta(hours=23, minutes=59) < expires_in <= timedelta(hours=24)


async def test_each_rotation_gives_a_different_secret(api: GraphQLClient, tenants: Tenants) -> None:
    subscription_id, first = await subscribe(api, tenants.key_a)

    secrets = [first]
    for _ in range(2):
        data = await api.data(ROTATE, {"id": subscription_id}, key=tenants.key_a)
        secrets.append(data["rotateWebhookSubscriptionSecret"]["signingSecret"])

    assert len(set(secrets)) == 3


@pytest.mark.parametrize("missing", ["00000000-0000-4000-8000-000000000000", "garbage"])
async def test_rotating_a_missing_subscription_is_not_found(
    api: GraphQLClient, tenants: Tenants, missing: str
) -> None:
    payload = (await api.data(ROTATE, {"id": missing}, key=tenants.key_a))[
        "rotateWebhookSubscriptionSecret"
    ]

    assert payload["signingSecret"] is None
    assert errors_of(payload) == [(["id"], "NOT_FOUND")]
