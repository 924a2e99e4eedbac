"""The PUBLISHER key's rights: publish, and read events and the status of deliveries.

The order system publishes for every company and follows what it published. It never
reads a subscription's configuration (callback URL, with whatever a tenant put in its
query string, notification email, API key parameters, custom headers, description,
delivery rate) nor
what a receiver answered (response bodies, error texts, the URLs attempts went to). The
database role it runs as is held to the same (tests/integration/test_row_level_security.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from app.store.services import Services
from tests.payloads import order_status_payload
from tests.service import GraphQLClient, Tenants

TENANT_SECRET = "tenant-own-query-secret-7f3a"
CALLBACK_URL = f"http://127.0.0.1:9/hooks/acme-orders?token={TENANT_SECRET}"
PARAM_VALUE = "param-value-9d41c0"
HEADER_NAME = "X-Acme-Private"
HEADER_VALUE = "header-value-5e62b7"
EMAIL = "ops-private@company-a.example"
DESCRIPTION = "the integration behind the VPN"
RESPONSE_BODY = "receiver answer: internal stack trace at db-7.acme.internal"
ERROR = "DNS lookup failed for hooks-private.acme.internal"
ATTEMPT_URL = "http://127.0.0.1:9/hooks/acme-orders?token=tenant-own-query-secret-7f3a"
# Nothing of these may reach a PUBLISHER key, in data or in errors.
CONFIDENTIAL = [
    "acme-orders",
    TENANT_SECRET,
    PARAM_VALUE[-4:],
    HEADER_NAME,
    HEADER_VALUE[-4:],
    EMAIL,
    DESCRIPTION,
    "stack trace",
    "acme.internal",
]

CREATE = """
mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) { subscription { id } userErrors { code } }
}"""
PUBLISH = """
mutation($input: PublishEventInput!) {
  publishEvent(input: $input) { event { id deliveries { id } } userErrors { code } }
}"""
STATUS_FIELDS = """
  id webhookId status cycle attemptCount maxAttempts nextAttemptAt lastAttemptAt
  lastResponseStatus createdAt completedAt
  attempts { number cycle startedAt durationMs responseStatus succeeded }
  subscription { id isActive createdAt updatedAt webhook { key } }
"""
# Everything the publisher may read.
PUBLISHER_VIEW = f"""
query($delivery: ID!, $event: ID!) {{
  viewer {{ role company {{ id }} }}
  events(first: 10) {{ nodes {{ id subject payload idempotencyKey company {{ id name }}
                   deliveries {{ {STATUS_FIELDS} }} }} }}
  event(id: $event) {{ id deliveries {{ {STATUS_FIELDS} }} }}
  deliveries(first: 10) {{ nodes {{ {STATUS_FIELDS} event {{ id }} }} }}
  delivery(id: $delivery) {{ {STATUS_FIELDS} }}
}}"""
# What a receiver answered and where an attempt went, by each way of reaching attempts
# (a page loads them with it; one delivery and an event's deliveries through a loader).
ANSWERS = "attempts { responseStatus responseBody error url }"
ANSWERS_BY_WAY = {
    "deliveries": f"query {{ deliveries {{ nodes {{ {ANSWERS} }} }} }}",
    "delivery": f"query($id: ID!) {{ delivery(id: $id) {{ {ANSWERS} }} }}",
    "event.deliveries": (
        f"query($event: ID!) {{ event(id: $event) {{ deliveries {{ {ANSWERS} }} }} }}"
    ),
}
CONFIGURATION_FIELDS = [
    "callbackUrl",
    "notificationEmail",
    "apiKeyParams { name valueHint }",
    "headers { name valueHint }",
    "description",
    "maxDeliveriesPerSecond",
]


@dataclass(frozen=True)
class Published:
    subscription: str
    event: str
    delivery: str


async def sql(services: Services, statement: str, *params: Any) -> None:
    """Run SQL as the owner (set-up only)."""
    async with services.db.pool.connection() as connection:
        await connection.execute(statement, params)


@pytest.fixture
async def published(api: GraphQLClient, services: Services, tenants: Tenants) -> Published:
    """Company A's configured subscription, an event published to it and one failed
    attempt with the receiver's answer recorded."""
    created = await api.data(
        CREATE,
        {
            "input": {
                "webhook": "ORDER_STATUS",
                "callbackUrl": CALLBACK_URL,
                "notificationEmail": EMAIL,
                "description": DESCRIPTION,
                "apiKeyParams": [{"name": "api_key", "value": PARAM_VALUE}],
                "headers": [{"name": HEADER_NAME, "value": HEADER_VALUE}],
                "maxDeliveriesPerSecond": 7,
            }
        },
        key=tenants.key_a,
    )
    subscription = created["createWebhookSubscription"]["subscription"]["id"]
    event = (
        await api.data(
            PUBLISH,
            {
                "input": {
                    "companyId": tenants.a,
                    "webhook": "ORDER_STATUS",
                    "payload": order_status_payload(n=1),
                }
            },
            key=tenants.publisher,
        )
    )["publishEvent"]["event"]
    [delivery] = [item["id"] for item in event["deliveries"]]
    await sql(
        services,
        "INSERT INTO delivery_attempts (delivery_id, cycle, number, company_id, started_at,"
        " duration_ms, response_status, response_body, error, succeeded, url)"
        " VALUES (%s, 1, 1, %s, now(), 12, 500, %s, %s, false, %s)",
        delivery,
        tenants.a,
        RESPONSE_BODY,
        ERROR,
        ATTEMPT_URL,
    )
    await sql(
        services,
        "UPDATE deliveries SET status = 'RETRYING', attempt_count = 1,"
        " last_response_status = 500, last_attempt_at = now() WHERE id = %s",
        delivery,
    )
    return Published(subscription, event["id"], delivery)


def confidential_in(body: dict[str, Any]) -> list[str]:
    text = json.dumps(body, ensure_ascii=False)
    return [value for value in CONFIDENTIAL if value in text]


async def test_the_publisher_reads_events_and_the_status_of_their_deliveries(
    api: GraphQLClient, tenants: Tenants, published: Published
) -> None:
    # When the publisher reads everything it may
    body = await api.post(
        PUBLISHER_VIEW,
        {"delivery": published.delivery, "event": published.event},
        key=tenants.publisher,
    )

    # Then it gets the event and its delivery's status, attempt by attempt
    assert "errors" not in body, body
    delivery = body["data"]["delivery"]
    assert (delivery["status"], delivery["attemptCount"], delivery["lastResponseStatus"]) == (
        "RETRYING",
        1,
        500,
    )
    assert [(a["number"], a["responseStatus"], a["succeeded"]) for a in delivery["attempts"]] == [
        (1, 500, False)
    ]
    assert delivery["subscription"] == {
        **delivery["subscription"],
        "id": published.subscription,
        "isActive": True,
    }
    assert body["data"]["event"]["deliveries"] == [delivery]
    assert body["data"]["events"]["nodes"][0]["company"] == {"id": tenants.a, "name": "Company A"}
    # ...and nothing of the subscription's configuration or the receiver's answer
    assert confidential_in(body) == []


@pytest.mark.parametrize("way", list(ANSWERS_BY_WAY))
async def test_the_publisher_gets_no_receiver_answer_nor_attempt_url(
    api: GraphQLClient, tenants: Tenants, published: Published, way: str
) -> None:
    variables = {"id": published.delivery, "event": published.event}
    document = ANSWERS_BY_WAY[way]
    used = {name: value for name, value in variables.items() if f"${name}" in document}

    # When the publisher and the company read the attempt's answer the same way
    as_publisher = await api.data(document, used, key=tenants.publisher)
    as_company = await api.data(document, used, key=tenants.key_a)

    # Then the publisher sees the status code only; the company sees everything
    def attempts(data: dict[str, Any]) -> list[dict[str, Any]]:
        [root] = data.values()
        found = root["nodes"] if "nodes" in root else root.get("deliveries", [root])
        return [attempt for item in found for attempt in item["attempts"]]

    assert attempts(as_publisher) == [
        {"responseStatus": 500, "responseBody": None, "error": None, "url": None}
    ]
    assert attempts(as_company) == [
        {"responseStatus": 500, "responseBody": RESPONSE_BODY, "error": ERROR, "url": ATTEMPT_URL}
    ]


@pytest.mark.parametrize("field", CONFIGURATION_FIELDS)
async def test_a_subscriptions_configuration_is_forbidden_to_the_publisher(
    api: GraphQLClient, tenants: Tenants, published: Published, field: str
) -> None:
    document = f"query($id: ID!) {{ delivery(id: $id) {{ id subscription {{ id {field} }} }} }}"

    # When the publisher asks for one field of the configuration through a delivery
    body = await api.post(document, {"id": published.delivery}, key=tenants.publisher)

    # Then that field is FORBIDDEN, saying why, and nothing of it is in the answer
    [error] = body["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert "COMPANY key" in error["message"]
    name = field.split()[0]
    assert error["path"] == ["delivery", "subscription", name]
    # (a non-null field takes its delivery with it; the nullable description is null)
    delivery = body["data"]["delivery"]
    assert delivery is None or delivery["subscription"][name] is None
    assert confidential_in(body) == []
    # While the company reads it with the same document
    assert "errors" not in await api.post(document, {"id": published.delivery}, key=tenants.key_a)
