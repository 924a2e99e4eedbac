"""Custom headers on the wire: every attempt, retry, redelivery and test event carries
them, the signature still verifies with ``standardwebhooks``, an update's new value goes
out with the next attempt, and no record of an attempt holds a value."""

from __future__ import annotations

import json
import uuid

from psycopg.types.json import Jsonb

from app.core.masking import mask_value
from app.core.secret_box import header_context
from app.core.signing import user_agent
from tests.delivery import (
    OpenService,
    Service,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
    verify,
)
from tests.payloads import order_status_payload
from tests.receivers import Receiver, respond

BEARER = "Bearer tok-SECRET-0123456789abcd"
TENANT = "acme-SECRET-7"
HEADERS = [{"name": "Authorization", "value": BEARER}, {"name": "X-Tenant", "value": TENANT}]

REDELIVER = """
mutation($id: ID!) { redeliver(deliveryId: $id) { delivery { id } userErrors { code } } }"""
SEND_TEST_EVENT = """
mutation($id: ID!) {
  sendTestEvent(subscriptionId: $id) { event { deliveries { id } } userErrors { code } }
}"""
UPDATE_HEADERS = """
mutation($id: ID!, $headers: [HeaderInput!]) {
  updateWebhookSubscription(input: {id: $id, headers: $headers}) {
    subscription { headers { name valueHint } }
    userErrors { field code message }
  }
}"""
ATTEMPTS = """
query($id: ID!) { delivery(id: $id) { attempts { number cycle url responseBody error } } }"""


async def mutate(service: Service, document: str, **variables: object) -> dict[str, object]:
    data = await service.api.data(document, variables, key=service.tenants.key_a)
    [payload] = data.values()
    assert payload["userErrors"] == [], payload["userErrors"]
    result: dict[str, object] = payload
    return result


async def run_due_now(service: Service, delivery_id: str) -> None:
    """Make the delivery's scheduled retry due at once instead of after its interval."""
    await service.sql(
        "UPDATE procrastinate_jobs SET scheduled_at = now()"
        " WHERE lock = %(lock)s AND status = 'todo'",
        lock=delivery_id,
    )


async def test_every_attempt_retry_and_redelivery_carries_the_headers_and_verifies(
    open_service: OpenService,
) -> None:
    # Given a receiver that fails twice, then succeeds, and a subscription with two headers
    service = await open_service(retry_interval_seconds=0.2, max_attempts=3)
    with Receiver() as receiver:
        receiver.script("/hook", [respond(500), respond(500), respond(200)])
        subscription = await service.subscribe(receiver.url_for("/hook"), headers=HEADERS)

        # When an event is published, retried to success, then redelivered
        delivery_id = await service.publish(order_status_payload(order_status="scheduled"))
        await service.wait_for_status(delivery_id, "SUCCEEDED")
        await mutate(service, REDELIVER, id=delivery_id)
        requests = await receiver.wait_for_async(4)
        await service.wait_for_status(delivery_id, "SUCCEEDED")

    # Then each of the four requests carried both headers beside ours, and verifies
    assert [request.header("webhook-attempt") for request in requests] == ["1", "2", "3", "1"]
    for request in requests:
        assert request.header("authorization") == BEARER
        assert request.header("x-tenant") == TENANT
        assert request.header("user-agent") == user_agent()
        assert request.header("content-type") == "application/json"
        assert verify(request, subscription.secret)["data"]["order_status"] == "scheduled"
    # and no record of the attempts holds a value
    data = await service.api.data(ATTEMPTS, {"id": delivery_id}, key=service.tenants.key_a)
    assert len(data["delivery"]["attempts"]) == 4
    rows = await service.sql("SELECT * FROM delivery_attempts")
    for text in (json.dumps(data), json.dumps(rows, default=str)):
        assert "SECRET" not in text


async def test_a_test_event_carries_the_headers(open_service: OpenService) -> None:
    service = await open_service()
    with Receiver() as receiver:
        subscription = await service.subscribe(receiver.url_for("/hook"), headers=HEADERS)

        await mutate(service, SEND_TEST_EVENT, id=subscription.id)
        [request] = await receiver.wait_for_async(1)

    assert (request.header("authorization"), request.header("x-tenant")) == (BEARER, TENANT)
    assert verify(request, subscription.secret)["test"] is True


async def test_an_update_rotating_a_value_reaches_the_next_attempt(
    open_service: OpenService,
) -> None:
    # Given a delivery whose first attempt failed and whose retry waits
    service = await open_service(max_attempts=2)
    with Receiver() as receiver:
        receiver.script("/hook", [respond(500), respond(200)])
        subscription = await service.subscribe(receiver.url_for("/hook"), headers=HEADERS)
        delivery_id = await service.publish(order_status_payload())
        await service.wait_for_status(delivery_id, "RETRYING")

        # When the owner rotates the Authorization value (and drops the other header)
        rotated = "Bearer tok-ROTATED-9876543210"
        updated = await mutate(
            service,
            UPDATE_HEADERS,
            id=subscription.id,
            headers=[{"name": "authorization", "value": rotated}],
        )
        await run_due_now(service, delivery_id)
        await service.wait_for_status(delivery_id, "SUCCEEDED")
        first, second = receiver.requests

    # Then the retry sends the new value, and only it
    assert updated["subscription"] == {
        "headers": [{"name": "authorization", "valueHint": "••••3210"}]
    }
    assert (first.header("authorization"), first.header("x-tenant")) == (BEARER, TENANT)
    assert (second.header("authorization"), second.header("x-tenant")) == (rotated, None)
    verify(second, subscription.secret)


async def test_a_stored_header_of_ours_never_replaces_our_own(open_service: OpenService) -> None:
    # Given a row that holds headers the checks refuse today (written before a rule, or
    # by hand), each sealed as the service seals them
    service = await open_service()
    with Receiver() as receiver:
        subscription = await service.subscribe(receiver.url_for("/hook"))
        forged = {
            "Webhook-Signature": "v1,Zm9yZ2Vk",
            "webhook-id": "msg_forged",
            "User-Agent": "forged/1.0",
            "Content-Type": "text/plain",
            "Accept-Encoding": "gzip",
            "X-Kept": "kept-value",
        }
        box = service.services.secret_box
        sealed = [
            {
                "name": name,
                "value": box.encrypt(
                    value, context=header_context(uuid.UUID(subscription.id), name)
                ),
                "hint": mask_value(value),
            }
            for name, value in forged.items()
        ]
        await service.sql(
            "UPDATE subscriptions SET headers = %(headers)s WHERE id = %(id)s",
            headers=Jsonb(sealed),
            id=subscription.id,
        )

        # When an event is delivered
        delivery_id = await service.publish(order_status_payload())
        await service.wait_for_status(delivery_id, "SUCCEEDED")
        [request] = receiver.requests

    # Then the receiver got our headers, once each, and the harmless one
    assert request.header("user-agent") == user_agent()
    assert request.header("content-type") == "application/json"
    assert request.header("accept-encoding") == "identity"
    assert request.header("webhook-id") != "msg_forged"
    assert request.header("x-kept") == "kept-value"
    verify(request, subscription.secret)
