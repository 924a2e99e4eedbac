"""Publishing events: atomic fan-out to active subscriptions, validation, reads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.core.settings import Settings
from app.store.services import Services
from tests.catalogue import add_webhook_type
from tests.payloads import order_status_payload
from tests.service import GraphQLClient, Tenants

EVENT_FIELDS = """
  id subject payload idempotencyKey isTest createdAt
  company { id name }
  webhook { key }
  deliveries { id webhookId status attemptCount maxAttempts subscription { id } }
"""
PUBLISH = f"""
mutation($input: PublishEventInput!) {{
  publishEvent(input: $input) {{
    event {{ {EVENT_FIELDS} }}
    userErrors {{ field code message }}
  }}
}}"""
CREATE = """
mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) { subscription { id } userErrors { code } }
}"""
UPDATE = """
mutation($input: UpdateWebhookSubscriptionInput!) {
  updateWebhookSubscription(input: $input) { userErrors { code } }
}"""
DELETE = """
mutation($id: ID!) { deleteWebhookSubscription(id: $id) { userErrors { code } } }"""
EVENT = f"query($id: ID!) {{ event(id: $id) {{ {EVENT_FIELDS} }} }}"
EVENTS = """
query($first: Int, $after: String, $filter: EventFilter) {
  events(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id } }
    nodes { id subject company { id } webhook { key } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def subscribe(api: GraphQLClient, key: str, path: str, **changes: Any) -> str:
    """Create a subscription to http://127.0.0.1:9/<path>; returns its id."""
    subscription = {
        "webhook": "ORDER_STATUS",
        "callbackUrl": f"http://127.0.0.1:9/{path}",
        "notificationEmail": "ops@example.com",
    } | changes
    data = await api.data(CREATE, {"input": subscription}, key=key)
    assert data["createWebhookSubscription"]["userErrors"] == []
    subscription_id: str = data["createWebhookSubscription"]["subscription"]["id"]
    return subscription_id


def event_input(company: str, **changes: Any) -> dict[str, Any]:
    return {
        "companyId": company,
        "webhook": "ORDER_STATUS",
        "payload": order_status_payload(),
        "subject": "ord_1",
    } | changes


async def publish_payload(
    api: GraphQLClient, tenants: Tenants, company: str, **changes: Any
) -> dict[str, Any]:
    data = await api.data(
        PUBLISH, {"input": event_input(company, **changes)}, key=tenants.publisher
    )
    payload: dict[str, Any] = data["publishEvent"]
    return payload


async def publish(
    api: GraphQLClient, tenants: Tenants, company: str, **changes: Any
) -> dict[str, Any]:
    """Publish an event that must be accepted; returns the event."""
    payload = await publish_payload(api, tenants, company, **changes)
    assert payload["userErrors"] == [], payload["userErrors"]
    event: dict[str, Any] = payload["event"]
    return event


async def sql(services: Services, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run SQL as the owner (test set-up and checks only)."""
    async with services.db.pool.connection() as connection:
        cursor = await connection.execute(statement, params)
        return await cursor.fetchall() if cursor.description else []


async def counts(services: Services) -> tuple[int, int, int]:
    """How many events, deliveries and queued jobs exist."""
    rows = await sql(
        services,
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM deliveries),"
        " (SELECT count(*) FROM procrastinate_jobs)",
    )
    return rows[0]


# --- fan-out --------------------------------------------------------------------------


async def test_publish_creates_one_pending_delivery_per_active_matching_subscription(
    api: GraphQLClient, services: Services, settings: Settings, tenants: Tenants
) -> None:
    # Given company A with two active ORDER_STATUS subscriptions, an inactive one, a
    # deleted one and one to another webhook; and company B with an active one
    await add_webhook_type(services, "MEDIA_READY")
    first = await subscribe(api, tenants.key_a, "first")
    second = await subscribe(api, tenants.key_a, "second")
    await subscribe(api, tenants.key_a, "inactive", isActive=False)
    deleted = await subscribe(api, tenants.key_a, "deleted")
    await api.data(DELETE, {"id": deleted}, key=tenants.key_a)
    await subscribe(api, tenants.key_a, "media", webhook="MEDIA_READY")
    await subscribe(api, tenants.key_b, "b")

    # When the order system publishes an ORDER_STATUS event for A
    event = await publish(api, tenants, tenants.a)

    # Then exactly A's two active ORDER_STATUS subscriptions get a delivery, pending
    deliveries = event["deliveries"]
    assert sorted(delivery["subscription"]["id"] for delivery in deliveries) == sorted(
        [first, second]
    )
    for delivery in deliveries:
        assert delivery["status"] == "PENDING"
        assert delivery["attemptCount"] == 0
        assert delivery["maxAttempts"] == settings.max_attempts
        assert delivery["webhookId"].startswith("msg_")
    assert len({delivery["webhookId"] for delivery in deliveries}) == 2
    # ...and the event is recorded as published
    assert event["company"] == {"id": tenants.a, "name": "Company A"}
    assert event["webhook"] == {"key": "ORDER_STATUS"}
    assert event["payload"] == order_status_payload()
    assert event["subject"] == "ord_1"
    assert event["isTest"] is False
    assert event["idempotencyKey"] is None


async def test_each_delivery_has_its_job_queued(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given two subscriptions
    await subscribe(api, tenants.key_a, "first")
    await subscribe(api, tenants.key_a, "second")

    # When an event is published
    event = await publish(api, tenants, tenants.a)

    # Then one delivery job per delivery is waiting: attempt 1 of cycle 1, locked per delivery
    jobs = await sql(
        services,
        "SELECT lock, task_name, args, queue_name, status FROM procrastinate_jobs ORDER BY lock",
    )
    expected = sorted(
        (
            delivery["id"],
            "deliver_webhook",
            {"delivery_id": delivery["id"], "cycle": 1, "attempt": 1},
            "deliveries",
            "todo",
        )
        for delivery in event["deliveries"]
    )
    assert len(expected) == 2
    assert jobs == expected


async def test_an_event_without_subscriptions_is_recorded_with_no_deliveries(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    event = await publish(api, tenants, tenants.a)

    assert event["deliveries"] == []
    assert await counts(services) == (1, 0, 0)


async def test_a_failure_after_the_event_insert_leaves_nothing(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given a subscription, and a queue that refuses new jobs, i.e. fails after the event
    # and its deliveries were inserted
    await subscribe(api, tenants.key_a, "hook")
    await sql(
        services,
        "CREATE FUNCTION refuse_jobs() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'queue unavailable'; END $$;"
        " CREATE TRIGGER refuse_jobs BEFORE INSERT ON procrastinate_jobs"
        " FOR EACH ROW EXECUTE FUNCTION refuse_jobs()",
    )

    # When an event is published
    body = await api.post(PUBLISH, {"input": event_input(tenants.a)}, key=tenants.publisher)

    # Then the call fails, and no event, delivery or job remains
    assert body["errors"], body
    assert body["data"] is None
    assert await counts(services) == (0, 0, 0)
    assert "queue unavailable" not in json.dumps(body)  # internals stay in the log


# Idempotency keys: test_api_idempotency.py.


# --- bad input ------------------------------------------------------------------------

BAD_INPUTS: dict[str, tuple[dict[str, Any], list[str], str]] = {
    "unknown-company": ({"companyId": "no-such-company"}, ["input", "companyId"], "NOT_FOUND"),
    "unknown-webhook": ({"webhook": "ORDER_SHIPPED"}, ["input", "webhook"], "UNKNOWN_WEBHOOK"),
    "payload-list": ({"payload": [1, 2, 3]}, ["input", "payload"], "INVALID"),
    "payload-string": ({"payload": "shipped"}, ["input", "payload"], "INVALID"),
    "payload-null-like-number": ({"payload": 42}, ["input", "payload"], "INVALID"),
    "payload-too-large": (
        {"payload": order_status_payload(blob="x" * (256 * 1024))},
        ["input", "payload"],
        "TOO_LARGE",
    ),
    "subject-too-long": ({"subject": "s" * 201}, ["input", "subject"], "TOO_LARGE"),
    "subject-control-chars": ({"subject": "ord\n1"}, ["input", "subject"], "INVALID"),
    "subject-bidi-override": ({"subject": "ord_\u202e1"}, ["input", "subject"], "INVALID"),
    "subject-invisible": ({"subject": "ord_\u20601"}, ["input", "subject"], "INVALID"),
    "idempotency-key-empty": ({"idempotencyKey": ""}, ["input", "idempotencyKey"], "INVALID"),
    "idempotency-key-too-long": (
        {"idempotencyKey": "k" * 201},
        ["input", "idempotencyKey"],
        "TOO_LARGE",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
async def test_bad_input_is_a_user_error_and_writes_nothing(
    api: GraphQLClient, services: Services, tenants: Tenants, case: str
) -> None:
    changes, field, code = BAD_INPUTS[case]
    # Given a subscription that a valid event would reach
    await subscribe(api, tenants.key_a, "hook")

    # When the order system publishes the bad input
    payload = await publish_payload(api, tenants, tenants.a, **changes)

    # Then the error names the field and code, and nothing was written or queued
    assert [(error["field"], error["code"]) for error in payload["userErrors"]] == [(field, code)]
    assert payload["event"] is None
    assert await counts(services) == (0, 0, 0)


async def test_the_size_error_states_the_limit(api: GraphQLClient, tenants: Tenants) -> None:
    payload = await publish_payload(
        api, tenants, tenants.a, payload=order_status_payload(blob="x" * 300_000)
    )

    assert "262144 bytes" in payload["userErrors"][0]["message"]


# --- reading events -------------------------------------------------------------------


async def test_event_by_id_for_its_company_and_for_the_publisher(
    api: GraphQLClient, tenants: Tenants
) -> None:
    # Given an event of company A and one of company B
    event_a = await publish(api, tenants, tenants.a)
    event_b = await publish(api, tenants, tenants.b)

    # Then the publisher reads both, and each company its own
    for event in (event_a, event_b):
        found = await api.data(EVENT, {"id": event["id"]}, key=tenants.publisher)
        assert found["event"] == event
    assert (await api.data(EVENT, {"id": event_a["id"]}, key=tenants.key_a))["event"] == event_a
    assert (await api.data(EVENT, {"id": event_b["id"]}, key=tenants.key_b))["event"] == event_b


@pytest.mark.parametrize("missing", ["00000000-0000-4000-8000-000000000000", "garbage", ""])
async def test_a_missing_or_malformed_event_id_is_null(
    api: GraphQLClient, tenants: Tenants, missing: str
) -> None:
    for key in (tenants.key_a, tenants.publisher):
        assert await api.data(EVENT, {"id": missing}, key=key) == {"event": None}


async def test_events_filter_by_webhook_and_subject(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    await add_webhook_type(services, "MEDIA_READY")
    order_1 = await publish(api, tenants, tenants.a, subject="ord_1")
    order_2 = await publish(api, tenants, tenants.a, subject="ord_2")
    media_1 = await publish(api, tenants, tenants.a, subject="ord_1", webhook="MEDIA_READY")

    async def ids(event_filter: dict[str, Any]) -> set[str]:
        data = await api.data(EVENTS, {"filter": event_filter}, key=tenants.key_a)
        return {node["id"] for node in data["events"]["nodes"]}

    assert await ids({"webhook": "ORDER_STATUS"}) == {order_2["id"], order_1["id"]}
    assert await ids({"webhook": "MEDIA_READY"}) == {media_1["id"]}
    assert await ids({"subject": "ord_1"}) == {media_1["id"], order_1["id"]}
    assert await ids({"subject": "ord_1", "webhook": "ORDER_STATUS"}) == {order_1["id"]}
    assert await ids({"subject": "ord_9"}) == set()


async def test_events_filter_by_creation_time(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given events created on the first of January, February and March
    created = {}
    for month in (1, 2, 3):
        event = await publish(api, tenants, tenants.a, subject=f"month-{month}")
        await sql(
            services,
            "UPDATE events SET created_at = %s WHERE id = %s",
            f"2026-0{month}-01T12:00:00Z",
            event["id"],
        )
        created[month] = event["id"]

    async def ids(event_filter: dict[str, Any]) -> list[str]:
        data = await api.data(EVENTS, {"filter": event_filter}, key=tenants.key_a)
        return [node["id"] for node in data["events"]["nodes"]]

    # Then createdAfter and createdBefore bound the list, alone or together
    assert await ids({"createdAfter": "2026-01-15T00:00:00Z"}) == [created[3], created[2]]
    assert await ids({"createdBefore": "2026-02-15T00:00:00Z"}) == [created[2], created[1]]
    assert await ids(
        {"createdAfter": "2026-01-15T00:00:00Z", "createdBefore": "2026-02-15T00:00:00Z"}
    ) == [created[2]]
    # ...and offsets are honoured: 13:00+02:00 is 11:00Z, before February's 12:00Z event
    assert await ids({"createdAfter": "2026-02-01T13:00:00+02:00"}) == [created[3], created[2]]


async def test_events_page_newest_first(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given five events, a minute apart
    published = [(await publish(api, tenants, tenants.a, subject=f"s{n}"))["id"] for n in range(5)]
    for minutes_ago, event_id in enumerate(reversed(published)):
        await sql(
            services,
            "UPDATE events SET created_at = now() - make_interval(mins => %s) WHERE id = %s",
            minutes_ago,
            event_id,
        )

    # When they are read two at a time
    seen: list[str] = []
    after = None
    flags = []
    while True:
        data = await api.data(EVENTS, {"first": 2, "after": after}, key=tenants.key_a)
        connection = data["events"]
        seen += [node["id"] for node in connection["nodes"]]
        flags.append(connection["pageInfo"]["hasNextPage"])
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]

    # Then every event comes once, newest first, over three pages
    assert seen == list(reversed(published))
    assert flags == [True, True, False]


async def test_the_publisher_lists_every_companys_events(
    api: GraphQLClient, tenants: Tenants
) -> None:
    event_a = await publish(api, tenants, tenants.a)
    event_b = await publish(api, tenants, tenants.b)

    data = await api.data(EVENTS, key=tenants.publisher)

    companies = {node["id"]: node["company"]["id"] for node in data["events"]["nodes"]}
    assert companies == {event_a["id"]: tenants.a, event_b["id"]: tenants.b}


async def test_a_malformed_events_cursor_is_bad_user_input(
    api: GraphQLClient, tenants: Tenants
) -> None:
    body = await api.post(EVENTS, {"after": "bogus"}, key=tenants.key_a)

    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "not a valid cursor" in body["errors"][0]["message"]
