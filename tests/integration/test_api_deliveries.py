"""Reading deliveries: filters, lookups by id, and the nested event, subscription, attempts."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from app.delivery.attempts import give_up
from app.domain.retention import purge_old_data
from app.store.database import WORKER_SCOPE, scoped
from app.store.services import Services
from tests.catalogue import add_webhook_type
from tests.delivery import (
    OpenService,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
)
from tests.payloads import order_status_payload
from tests.receivers import Receiver, respond
from tests.service import GraphQLClient, Tenants

CREATE = """
mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) { subscription { id } userErrors { code } }
}"""
CREATE_ORDERED = """
mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) {
    subscription { id } signingSecret userErrors { field code message }
  }
}"""
PUBLISH = """
mutation($input: PublishEventInput!) {
  publishEvent(input: $input) { event { id deliveries { id } } userErrors { code } }
}"""
DELIVERIES = """
query($first: Int, $after: String, $filter: DeliveryFilter) {
  deliveries(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id } }
    nodes { id status }
    pageInfo { hasNextPage endCursor }
  }
}"""
DELIVERY = """
query($id: ID!) {
  delivery(id: $id) {
    id webhookId status cycle attemptCount maxAttempts nextAttemptAt lastAttemptAt
    lastResponseStatus createdAt completedAt
    event { id subject payload webhook { key } company { id } }
    subscription { id callbackUrl webhook { key } }
    attempts {
      number cycle startedAt durationMs responseStatus responseBody error succeeded
    }
  }
}"""
# What the publisher may read of one (no subscription configuration: see
# test_api_publisher_rights.py).
PUBLISHER_DELIVERY = DELIVERY.replace("subscription { id callbackUrl", "subscription { id")
SUBSCRIPTION_DELIVERIES = """
query($id: ID!, $first: Int, $after: String, $status: DeliveryStatus) {
  webhookSubscription(id: $id) {
    deliveries(first: $first, after: $after, status: $status) {
      nodes { id status }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""
ATTEMPTS = "attempts { cycle number startedAt durationMs responseStatus error succeeded url }"
PAGE_ATTEMPTS = f"""
query($subscription: ID!) {{
  deliveries {{ nodes {{ id {ATTEMPTS} }} }}
  edges: deliveries {{ edges {{ node {{ id {ATTEMPTS} }} }} }}
  fragments: deliveries {{ ...Page }}
  failed: deliveries(filter: {{status: FAILED}}) {{ nodes {{ id {ATTEMPTS} }} }}
  webhookSubscription(id: $subscription) {{ deliveries {{ nodes {{ id {ATTEMPTS} }} }} }}
}}
fragment Page on DeliveryConnection {{ nodes {{ ... on Delivery {{ id {ATTEMPTS} }} }} }}
"""
ONE_WITH_ATTEMPTS = f"query($id: ID!) {{ delivery(id: $id) {{ id {ATTEMPTS} }} }}"
# Each delivery's subscription with a page of that subscription's deliveries.
NESTED_PAGES = f"""
{{ deliveries {{ nodes {{ id subscription {{ id
    deliveries(first: 5) {{ nodes {{ id {ATTEMPTS} }} pageInfo {{ hasNextPage }} }} }} }} }} }}
"""
EVENT_DELIVERIES = """
query($id: ID!) { event(id: $id) { deliveries { id subscription { id } } } }"""


@dataclass(frozen=True)
class Scenario:
    """Company A's subscriptions to two webhooks and three deliveries.

    ``first`` (ORDER_STATUS, subject ord_1) and ``second`` (ORDER_STATUS, subject ord_2,
    FAILED) go to ``orders``; ``media`` (MEDIA_READY, subject ord_1) goes to ``media_hook``.
    """

    orders: str
    media_hook: str
    first_event: str
    second_event: str
    media_event: str
    first: str
    second: str
    media: str


async def sql(services: Services, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run SQL as the owner (test set-up and checks only)."""
    async with services.db.pool.connection() as connection:
        cursor = await connection.execute(statement, params)
        return await cursor.fetchall() if cursor.description else []


async def subscribe(api: GraphQLClient, key: str, webhook: str, path: str) -> str:
    data = await api.data(
        CREATE,
        {
            "input": {
                "webhook": webhook,
                "callbackUrl": f"http://127.0.0.1:9/{path}",
                "notificationEmail": "ops@example.com",
            }
        },
        key=key,
    )
    subscription_id: str = data["createWebhookSubscription"]["subscription"]["id"]
    return subscription_id


async def publish(
    api: GraphQLClient, tenants: Tenants, company: str, webhook: str, subject: str
) -> tuple[str, list[str]]:
    """Publish an event; returns its id and its deliveries' ids."""
    data = await api.data(
        PUBLISH,
        {
            "input": {
                "companyId": company,
                "webhook": webhook,
                "payload": order_status_payload(external_id=subject),
                "subject": subject,
            }
        },
        key=tenants.publisher,
    )
    event = data["publishEvent"]["event"]
    return event["id"], [delivery["id"] for delivery in event["deliveries"]]


@pytest.fixture
async def scenario(api: GraphQLClient, services: Services, tenants: Tenants) -> Scenario:
    await add_webhook_type(services, "MEDIA_READY")
    orders = await subscribe(api, tenants.key_a, "ORDER_STATUS", "orders")
    media_hook = await subscribe(api, tenants.key_a, "MEDIA_READY", "media")
    first_event, [first] = await publish(api, tenants, tenants.a, "ORDER_STATUS", "ord_1")
    second_event, [second] = await publish(api, tenants, tenants.a, "ORDER_STATUS", "ord_2")
    media_event, [media] = await publish(api, tenants, tenants.a, "MEDIA_READY", "ord_1")
    # Spread creation over three minutes so "newest first" is unambiguous.
    for minutes_ago, delivery_id in enumerate((media, second, first)):
        await sql(
            services,
            "UPDATE deliveries SET created_at = now() - make_interval(mins => %s) WHERE id = %s",
            minutes_ago,
            delivery_id,
        )
    await sql(
        services,
        "UPDATE deliveries SET status = 'FAILED', completed_at = now() WHERE id = %s",
        second,
    )
    return Scenario(
        orders, media_hook, first_event, second_event, media_event, first, second, media
    )


async def listed(api: GraphQLClient, key: str, **variables: Any) -> list[str]:
    data = await api.data(DELIVERIES, variables, key=key)
    return [node["id"] for node in data["deliveries"]["nodes"]]


async def test_deliveries_list_newest_first(
    api: GraphQLClient, tenants: Tenants, scenario: Scenario
) -> None:
    assert await listed(api, tenants.key_a) == [scenario.media, scenario.second, scenario.first]


FILTERS: dict[str, tuple[Any, list[str]]] = {
    "status-failed": (lambda s: {"status": "FAILED"}, ["second"]),
    "status-pending": (lambda s: {"status": "PENDING"}, ["media", "first"]),
    "status-succeeded": (lambda s: {"status": "SUCCEEDED"}, []),
    "webhook": (lambda s: {"webhook": "ORDER_STATUS"}, ["second", "first"]),
    "subscription": (lambda s: {"subscriptionId": s.media_hook}, ["media"]),
    "event": (lambda s: {"eventId": s.second_event}, ["second"]),
    "subject": (lambda s: {"subject": "ord_1"}, ["media", "first"]),
    "subject-and-webhook": (
        lambda s: {"subject": "ord_1", "webhook": "MEDIA_READY"},
        ["media"],
    ),
    "status-and-subscription": (
        lambda s: {"status": "PENDING", "subscriptionId": s.orders},
        ["first"],
    ),
    "unknown-subscription": (
        lambda s: {"subscriptionId": "00000000-0000-4000-8000-000000000000"},
        [],
    ),
}


@pytest.mark.parametrize("case", list(FILTERS))
async def test_deliveries_filter(
    api: GraphQLClient, tenants: Tenants, scenario: Scenario, case: str
) -> None:
    make_filter, expected = FILTERS[case]

    found = await listed(api, tenants.key_a, filter=make_filter(scenario))

    assert found == [getattr(scenario, name) for name in expected]


async def test_deliveries_filter_by_creation_time(
    api: GraphQLClient, services: Services, tenants: Tenants, scenario: Scenario
) -> None:
    # Given the deliveries were created 2, 1 and 0 minutes ago
    [(one_and_a_half_minutes_ago,)] = await sql(services, "SELECT now() - interval '90 seconds'")
    moment = one_and_a_half_minutes_ago.isoformat()

    after = await listed(api, tenants.key_a, filter={"createdAfter": moment})
    before = await listed(api, tenants.key_a, filter={"createdBefore": moment})

    assert after == [scenario.media, scenario.second]
    assert before == [scenario.first]


@pytest.mark.parametrize("field", ["subscriptionId", "eventId"])
async def test_a_malformed_id_in_a_filter_is_bad_user_input(
    api: GraphQLClient, tenants: Tenants, field: str
) -> None:
    body = await api.post(DELIVERIES, {"filter": {field: "not-an-id"}}, key=tenants.key_a)

    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "'not-an-id'" in body["errors"][0]["message"]


async def test_deliveries_page_with_cursors(
    api: GraphQLClient, tenants: Tenants, scenario: Scenario
) -> None:
    first_page = await api.data(DELIVERIES, {"first": 2}, key=tenants.key_a)
    info = first_page["deliveries"]["pageInfo"]
    second_page = await api.data(
        DELIVERIES, {"first": 2, "after": info["endCursor"]}, key=tenants.key_a
    )

    assert [node["id"] for node in first_page["deliveries"]["nodes"]] == [
        scenario.media,
        scenario.second,
    ]
    assert info["hasNextPage"] is True
    assert info["endCursor"] == first_page["deliveries"]["edges"][-1]["cursor"]
    assert [node["id"] for node in second_page["deliveries"]["nodes"]] == [scenario.first]
    assert second_page["deliveries"]["pageInfo"]["hasNextPage"] is False


async def test_delivery_by_id_with_its_event_subscription_and_attempts(
    api: GraphQLClient, services: Services, tenants: Tenants, scenario: Scenario
) -> None:
    # Given the failed delivery made two attempts in its first cycle and one in a second
    await sql(
        services,
        "INSERT INTO delivery_attempts (delivery_id, cycle, number, company_id, started_at,"
        " duration_ms, response_status, response_body, error, succeeded) VALUES"
        " (%s, 2, 1, %s, now(), 5, NULL, NULL, 'connection refused', false),"
        " (%s, 1, 2, %s, now() - interval '1 minute', 250, 500, 'oops', 'HTTP 500', false),"
        " (%s, 1, 1, %s, now() - interval '2 minutes', 15000, NULL, NULL,"
        "  'timed out after 15 s', false)",
        *[scenario.second, tenants.a] * 3,
    )
    await sql(
        services,
        "UPDATE deliveries SET attempt_count = 1, cycle = 2, last_response_status = 500"
        " WHERE id = %s",
        scenario.second,
    )

    # When it is read by id
    data = await api.data(DELIVERY, {"id": scenario.second}, key=tenants.key_a)

    # Then its own fields, its event, its subscription and its attempts (oldest first) come
    delivery = data["delivery"]
    assert delivery["id"] == scenario.second
    assert delivery["webhookId"].startswith("msg_")
    assert (delivery["status"], delivery["cycle"], delivery["attemptCount"]) == ("FAILED", 2, 1)
    assert delivery["lastResponseStatus"] == 500
    assert delivery["completedAt"] is not None
    assert delivery["event"] == {
        "id": scenario.second_event,
        "subject": "ord_2",
        "payload": order_status_payload(external_id="ord_2"),
        "webhook": {"key": "ORDER_STATUS"},
        "company": {"id": tenants.a},
    }
    assert delivery["subscription"] == {
        "id": scenario.orders,
        "callbackUrl": "http://127.0.0.1:9/orders",
        "webhook": {"key": "ORDER_STATUS"},
    }
    assert [(a["cycle"], a["number"], a["error"]) for a in delivery["attempts"]] == [
        (1, 1, "timed out after 15 s"),
        (1, 2, "HTTP 500"),
        (2, 1, "connection refused"),
    ]
    second_attempt = delivery["attempts"][1]
    assert second_attempt["responseStatus"] == 500
    assert second_attempt["responseBody"] == "oops"
    assert second_attempt["durationMs"] == 250
    assert second_attempt["succeeded"] is False


async def test_a_pages_attempts_are_those_each_delivery_reads_on_its_own(
    api: GraphQLClient, services: Services, tenants: Tenants, scenario: Scenario
) -> None:
    # Given attempts for two of the three deliveries, in two cycles
    await sql(
        services,
        "INSERT INTO delivery_attempts (delivery_id, cycle, number, company_id, started_at,"
        " duration_ms, response_status, response_body, error, succeeded, url) VALUES"
        " (%s, 2, 1, %s, now(), 5, NULL, NULL, 'connection refused', false, 'http://x/a'),"
        " (%s, 1, 1, %s, now() - interval '2 minutes', 250, 500, 'oops', 'HTTP 500', false,"
        "  NULL),"
        " (%s, 1, 1, %s, now() - interval '1 minute', 12, 204, '', NULL, true, NULL)",
        *[scenario.second, tenants.a, scenario.second, tenants.a, scenario.media, tenants.a],
    )
    alone = {
        delivery_id: (await api.data(ONE_WITH_ATTEMPTS, {"id": delivery_id}, key=tenants.key_a))[
            "delivery"
        ]["attempts"]
        for delivery_id in (scenario.first, scenario.second, scenario.media)
    }
    assert [len(alone[d]) for d in (scenario.first, scenario.second, scenario.media)] == [0, 2, 1]

    # When pages ask for attempts through nodes, edges, fragments, a filter and a subscription
    data = await api.data(PAGE_ATTEMPTS, {"subscription": scenario.orders}, key=tenants.key_a)

    # Then every delivery of every page carries exactly what it reads on its own
    pages = {
        "nodes": data["deliveries"]["nodes"],
        "edges": [edge["node"] for edge in data["edges"]["edges"]],
        "fragments": data["fragments"]["nodes"],
        "failed": data["failed"]["nodes"],
        "subscription": data["webhookSubscription"]["deliveries"]["nodes"],
    }
    for name, nodes in pages.items():
        assert nodes, name
        for node in nodes:
            assert node["attempts"] == alone[node["id"]], (name, node["id"])
    assert [node["id"] for node in pages["failed"]] == [scenario.second]


async def test_a_new_delivery_has_no_attempts_yet(
    api: GraphQLClient, tenants: Tenants, scenario: Scenario
) -> None:
    delivery = (await api.data(DELIVERY, {"id": scenario.first}, key=tenants.key_a))["delivery"]

    assert delivery["status"] == "PENDING"
    assert delivery["attempts"] == []
    assert delivery["lastAttemptAt"] is None
    assert delivery["completedAt"] is None
    assert delivery["nextAttemptAt"] is not None


@pytest.mark.parametrize(
    "missing", ["00000000-0000-4000-8000-000000000000", "not-a-uuid", "", "' OR 1=1 --"]
)
async def test_a_missing_or_malformed_delivery_id_is_null(
    api: GraphQLClient, tenants: Tenants, missing: str
) -> None:
    for key in (tenants.key_a, tenants.publisher):
        body = await api.post(DELIVERY, {"id": missing}, key=key)

        assert body == {"data": {"delivery": None}}


async def test_the_publisher_reads_deliveries_of_every_company(
    api: GraphQLClient, tenants: Tenants, scenario: Scenario
) -> None:
    await subscribe(api, tenants.key_b, "ORDER_STATUS", "b")
    _, [delivery_b] = await publish(api, tenants, tenants.b, "ORDER_STATUS", "ord_b")

    found = set(await listed(api, tenants.publisher))
    by_id = await api.data(PUBLISHER_DELIVERY, {"id": delivery_b}, key=tenants.publisher)

    assert found == {scenario.first, scenario.second, scenario.media, delivery_b}
    assert by_id["delivery"]["event"]["company"] == {"id": tenants.b}


async def test_an_events_deliveries_are_nested_in_it(
    api: GraphQLClient, tenants: Tenants, scenario: Scenario
) -> None:
    data = await api.data(EVENT_DELIVERIES, {"id": scenario.media_event}, key=tenants.key_a)

    assert data["event"]["deliveries"] == [
        {"id": scenario.media, "subscription": {"id": scenario.media_hook}}
    ]


async def test_a_subscriptions_deliveries_filter_by_status_and_page(
    api: GraphQLClient, tenants: Tenants, scenario: Scenario
) -> None:
    async def nodes(**variables: Any) -> list[dict[str, Any]]:
        data = await api.data(
            SUBSCRIPTION_DELIVERIES, {"id": scenario.orders, **variables}, key=tenants.key_a
        )
        found: list[dict[str, Any]] = data["webhookSubscription"]["deliveries"]["nodes"]
        return found

    assert await nodes() == [
        {"id": scenario.second, "status": "FAILED"},
        {"id": scenario.first, "status": "PENDING"},
    ]
    assert await nodes(status="FAILED") == [{"id": scenario.second, "status": "FAILED"}]
    assert await nodes(first=1) == [{"id": scenario.second, "status": "FAILED"}]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        pytest.param({"after": "nope"}, "not a valid cursor", id="malformed-cursor"),
        pytest.param({"first": 0}, "`first` must be at least 1", id="first-zero"),
    ],
)
async def test_bad_paging_of_a_subscriptions_deliveries_is_bad_user_input(
    api: GraphQLClient,
    tenants: Tenants,
    scenario: Scenario,
    variables: dict[str, Any],
    message: str,
) -> None:
    body = await api.post(
        SUBSCRIPTION_DELIVERIES, {"id": scenario.orders, **variables}, key=tenants.key_a
    )

    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert message in error["message"]
    assert error["path"] == ["webhookSubscription", "deliveries"]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        pytest.param({"after": "nope"}, "not a valid cursor", id="malformed-cursor"),
        pytest.param({"first": 0}, "`first` must be at least 1", id="first-zero"),
    ],
)
async def test_bad_paging_of_deliveries_is_bad_user_input(
    api: GraphQLClient, tenants: Tenants, variables: dict[str, Any], message: str
) -> None:
    body = await api.post(DELIVERIES, variables, key=tenants.key_a)

    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert message in body["errors"][0]["message"]


async def test_nested_pages_of_subscriptions_deliveries_take_one_query_together(
    api: GraphQLClient,
    services: Services,
    tenants: Tenants,
    scenario: Scenario,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given each subscription's deliveries as it lists them on its own
    alone = {
        subscription: (
            await api.data(SUBSCRIPTION_DELIVERIES, {"id": subscription}, key=tenants.key_a)
        )["webhookSubscription"]["deliveries"]["nodes"]
        for subscription in (scenario.orders, scenario.media_hook)
    }
    # ... and a record of the queries the API runs
    names: list[str] = []
    fetch_all = services.db.fetch_all

    async def recording(query: str, **arguments: Any) -> Any:
        names.append(query)
        return await fetch_all(query, **arguments)

    monkeypatch.setattr(services.db, "fetch_all", recording)

    # When a page of deliveries asks for each one's subscription's page of deliveries
    data = await api.data(NESTED_PAGES, key=tenants.key_a)

    # Then every nested page is what the subscription lists on its own
    nodes = data["deliveries"]["nodes"]
    assert len(nodes) == 3
    for node in nodes:
        nested = node["subscription"]["deliveries"]["nodes"]
        assert [n["id"] for n in nested] == [n["id"] for n in alone[node["subscription"]["id"]]]
        assert all(n["attempts"] == [] for n in nested)
    # ... and the three pages (two subscriptions) came in one query, their attempts in one
    assert names.count("deliveries_of_subscriptions") == 1
    assert names.count("list_deliveries") == 1  # the outer page
    assert names.count("attempts_of_deliveries") == 1


async def test_a_subscriptions_deliveries_page_on_with_the_end_cursor(
    api: GraphQLClient, tenants: Tenants, scenario: Scenario
) -> None:
    first = await api.data(
        SUBSCRIPTION_DELIVERIES, {"id": scenario.orders, "first": 1}, key=tenants.key_a
    )
    page = first["webhookSubscription"]["deliveries"]
    assert page["pageInfo"]["hasNextPage"] is True

    rest = await api.data(
        SUBSCRIPTION_DELIVERIES,
        {"id": scenario.orders, "after": page["pageInfo"]["endCursor"]},
        key=tenants.key_a,
    )

    assert [node["id"] for node in page["nodes"]] == [scenario.second]
    following = rest["webhookSubscription"]["deliveries"]
    assert [node["id"] for node in following["nodes"]] == [scenario.first]
    assert following["pageInfo"]["hasNextPage"] is False


REQUESTS = """
query($id: ID!) {
  delivery(id: $id) {
    webhookId sequence
    attempts { number url request { url headers { name value } body } }
  }
}"""
ROTATE = """
mutation($id: ID!) { rotateWebhookSubscriptionSecret(id: $id) { signingSecret } }"""
# What the transport adds to every request, beside the headers an attempt sets.
TRANSPORT_HEADERS = {"host", "content-length", "accept", "accept-encoding", "connection"}


async def test_each_attempt_shows_the_request_it_sent_custom_header_values_masked(
    open_service: OpenService,
) -> None:
    # Given an ordered subscription with an API key parameter and two custom headers,
    # whose receiver fails the first attempt and takes the second, the signing secret
    # rotated in between (the second is signed with both secrets)
    service = await open_service(retry_interval_seconds=0.3)
    with Receiver() as receiver:
        receiver.script("/req", [respond(500), respond(200)])
        data = await service.api.data(
            CREATE_ORDERED,
            {
                "input": {
                    "webhook": "ORDER_STATUS",
                    "callbackUrl": receiver.url_for("/req?plain=1"),
                    "notificationEmail": "ops@example.com",
                    "apiKeyParams": [{"name": "api_key", "value": "key-value-never-shown"}],
                    "headers": [
                        {"name": "X-Tenant-Token", "value": "header-value-never-shown"},
                        {"name": "X-Other", "value": "other-value-never-shown"},
                    ],
                    "ordering": "PER_SUBJECT",
                }
            },
            key=service.tenants.key_a,
        )
        created = data["createWebhookSubscription"]
        subscription, first_secret = created["subscription"]["id"], created["signingSecret"]
        delivery_id = await service.publish(subject=None)
        await service.wait_for_status(delivery_id, "RETRYING")
        rotated = await service.api.data(ROTATE, {"id": subscription}, key=service.tenants.key_a)
        second_secret = rotated["rotateWebhookSubscriptionSecret"]["signingSecret"]
        await service.wait_for_status(delivery_id, "SUCCEEDED")
        received = receiver.requests_to("/req")

        # When company A reads the delivery's attempts, and the publisher does
        shown = (await service.api.data(REQUESTS, {"id": delivery_id}, key=service.tenants.key_a))[
            "delivery"
        ]
        publisher = await service.api.data(
            REQUESTS.replace("request { url headers { name value } body }", "request { url }"),
            {"id": delivery_id},
            key=service.tenants.publisher,
        )

    # Then each attempt shows what its request carried: the URL as recorded, the body's
    # exact bytes, and every header it set, in order, with its value as received...
    assert [attempt["number"] for attempt in shown["attempts"]] == [1, 2]
    assert len(received) == 2
    for attempt, request in zip(shown["attempts"], received, strict=True):
        sent = attempt["request"]
        assert sent["url"] == attempt["url"]
        assert sent["url"].endswith("/req?plain=1&api_key=••••")
        assert sent["body"].encode() == request.body
        names = [header["name"] for header in sent["headers"]]
        assert names == [
            "X-Tenant-Token",
            "X-Other",
            "content-type",
            "user-agent",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "webhook-attempt",
            "webhook-sequence",
        ]
        assert {name.lower() for name in names} == set(request.headers) - TRANSPORT_HEADERS
        values = {header["name"]: header["value"] for header in sent["headers"]}
        # ...but the custom headers' values, masked as API key parameters are
        assert values.pop("X-Tenant-Token") == values.pop("X-Other") == "••••"
        assert values == {name: request.header(name) for name in values}
        assert values["webhook-id"] == shown["webhookId"]
        assert values["webhook-sequence"] == str(shown["sequence"]) == "1"
        assert values["webhook-attempt"] == str(attempt["number"])
    # the signatures shown are the ones sent: the first under the first secret, the
    # second under both (a receiver verifies each with what it shows)
    first, second = (attempt["request"] for attempt in shown["attempts"])
    for sent, secrets in ((first, [first_secret]), (second, [first_secret, second_secret])):
        headers = {header["name"]: header["value"] for header in sent["headers"]}
        assert len(headers["webhook-signature"].split()) == len(secrets)
        for secret in secrets:
            Webhook(secret).verify(sent["body"].encode(), headers)
    assert first != second
    # and never a secret value, anywhere in the answer; the publisher gets no request
    text = json.dumps(shown)
    for value in ("key-value-never-shown", "header-value-never-shown", "other-value"):
        assert value not in text
    assert [attempt["request"] for attempt in publisher["delivery"]["attempts"]] == [None] * 2


async def test_an_attempt_that_sent_nothing_or_whose_body_is_gone_shows_no_request(
    open_service: OpenService,
) -> None:
    # Given one delivery sent and succeeded, and another given up by the maintenance loop
    # (its last attempt sent nothing)
    service = await open_service()
    with Receiver(default=respond(200)) as receiver:
        await service.subscribe(receiver.url_for("/kept"))
        sent = await service.publish(subject="ord_1")
        await service.wait_for_status(sent, "SUCCEEDED")
    await service.stop_worker()
    given_up = await service.publish(subject="ord_2")
    with scoped(WORKER_SCOPE):
        assert await give_up(service.services, uuid.UUID(given_up), "lost") == "failed"

    def requests_of(data: dict[str, Any]) -> list[Any]:
        return [attempt["request"] for attempt in data["delivery"]["attempts"]]

    async def read(delivery_id: str) -> list[Any]:
        return requests_of(
            await service.api.data(REQUESTS, {"id": delivery_id}, key=service.tenants.key_a)
        )

    # Then the sent one shows its request, the given-up attempt none
    [shown] = await read(sent)
    assert shown is not None and shown["body"]
    assert await read(given_up) == [None]

    # and once retention has dropped the delivered body, the sent one shows none either
    await purge_old_data(service.services.db, 30, now=datetime.now(UTC) + timedelta(days=365))
    assert await read(sent) == [None]
