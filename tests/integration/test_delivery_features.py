"""Redelivery, test events, secret rotation and stopping a subscription, end to end with
the real worker and real receivers that verify with ``standardwebhooks``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from tests.delivery import (
    OpenService,
    Service,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
    parse_time,
    verify,
)
from tests.receivers import Receiver, respond

REDELIVER = """
mutation($id: ID!) {
  redeliver(deliveryId: $id) { delivery { id status cycle } userErrors { code message } }
}"""

SEND_TEST_EVENT = """
mutation($id: ID!) {
  sendTestEvent(subscriptionId: $id) {
    event { id isTest subject deliveries { id } }
    userErrors { code message }
  }
}"""

SAMPLE_PAYLOAD = """
query { webhookTypes { key samplePayload } }"""

ROTATE = """
mutation($id: ID!) {
  rotateWebhookSubscriptionSecret(id: $id) { signingSecret userErrors { code message } }
}"""

DELETE = """
mutation($id: ID!) {
  deleteWebhookSubscription(id: $id) { deletedId userErrors { code message } }
}"""

SET_ACTIVE = """
mutation($id: ID!, $active: Boolean!) {
  updateWebhookSubscription(input: {id: $id, isActive: $active}) {
    subscription { isActive }
    userErrors { code message }
  }
}"""


async def sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


async def redeliver(service: Service, delivery_id: str) -> dict[str, object]:
    data = await service.api.data(REDELIVER, {"id": delivery_id}, key=service.tenants.key_a)
    payload: dict[str, object] = data["redeliver"]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload


async def set_active(service: Service, subscription_id: str, active: bool) -> None:
    data = await service.api.data(
        SET_ACTIVE, {"id": subscription_id, "active": active}, key=service.tenants.key_a
    )
    assert data["updateWebhookSubscription"]["userErrors"] == []


async def test_a_redelivery_after_failure_is_a_new_cycle_of_the_same_message(
    open_service: OpenService,
) -> None:
    # Given a delivery that failed (one attempt allowed), and a receiver that recovered
    service = await open_service(max_attempts=1)
    with Receiver() as receiver:
        receiver.script("/hook", [respond(500), respond(200)])
        subscription = await service.subscribe(receiver.url_for("/hook"))
        delivery_id = await service.publish()
        await service.wait_for_status(delivery_id, "FAILED")

        # When it is redelivered
        await redeliver(service, delivery_id)

        # Then a second cycle starts at attempt 1 and succeeds
        delivery = await service.wait_for_status(delivery_id, "SUCCEEDED")
        first, second = receiver.requests
    assert delivery["cycle"] == 2
    assert [(a["cycle"], a["number"], a["succeeded"]) for a in delivery["attempts"]] == [
        (1, 1, False),
        (2, 1, True),
    ]
    # with the same webhook-id and the very same body bytes
    assert first.header("webhook-id") == second.header("webhook-id") == delivery["webhookId"]
    assert first.body == second.body
    assert second.header("webhook-attempt") == "1"
    for request in (first, second):
        verify(request, subscription.secret)


async def test_a_test_event_brings_the_sample_payload_to_the_receiver(
    open_service: OpenService,
) -> None:
    # Given a subscription
    service = await open_service()
    types = await service.api.data(SAMPLE_PAYLOAD, key=service.tenants.key_a)
    [sample] = [t["samplePayload"] for t in types["webhookTypes"] if t["key"] == "ORDER_STATUS"]
    with Receiver() as receiver:
        subscription = await service.subscribe(receiver.url_for("/hook"))

        # When its owner sends a test event
        data = await service.api.data(
            SEND_TEST_EVENT, {"id": subscription.id}, key=service.tenants.key_a
        )
        payload = data["sendTestEvent"]
        assert payload["userErrors"] == []
        event = payload["event"]
        [delivery_ref] = event["deliveries"]

        # Then the receiver gets the sample payload, signed like any delivery
        await service.wait_for_status(delivery_ref["id"], "SUCCEEDED")
        [request] = receiver.requests
    assert event["isTest"] is True
    body = verify(request, subscription.secret)
    assert (body["id"], body["webhook"]) == (event["id"], "ORDER_STATUS")
    # marked as a test in the body it verifies, the sample as it is (its values are
    # invented), with a subject that is obviously no order id
    assert body["test"] is True
    assert body["data"] == sample
    assert body["subject"] == event["subject"] == "ord_test_event"


async def test_a_real_event_s_body_has_no_test_field(open_service: OpenService) -> None:
    # Given a subscription
    service = await open_service()
    with Receiver() as receiver:
        subscription = await service.subscribe(receiver.url_for("/hook"))

        # When a real event is published
        await service.wait_for_status(await service.publish(), "SUCCEEDED")
        [request] = receiver.requests

    # Then its body is the documented one, without a "test" field
    body = verify(request, subscription.secret)
    assert list(body) == ["id", "webhook", "companyId", "subject", "createdAt", "data"]


async def test_after_a_rotation_both_secrets_verify_until_the_overlap_ends(
    open_service: OpenService,
) -> None:
    # Given a subscription whose secret was rotated
    service = await open_service()
    with Receiver() as receiver:
        subscription = await service.subscribe(receiver.url_for("/hook"))
        old = subscription.secret
        data = await service.api.data(ROTATE, {"id": subscription.id}, key=service.tenants.key_a)
        new = data["rotateWebhookSubscriptionSecret"]["signingSecret"]
        assert new.startswith("whsec_") and new != old

        # When an event is delivered during the overlap
        await service.wait_for_status(await service.publish(), "SUCCEEDED")
        [during] = receiver.requests

        # Then it carries two signatures, and a receiver holding either secret accepts it
        assert len((during.header("webhook-signature") or "").split(" ")) == 2
        verify(during, old)
        verify(during, new)

        # When the overlap has ended
        await service.sql(
            "UPDATE subscriptions SET previous_secret_expires_at = now() - interval '1 minute' "
            "WHERE id = %(id)s",
            id=subscription.id,
        )
        await service.wait_for_status(await service.publish(), "SUCCEEDED")
        _, after = receiver.requests

    # Then only the new secret signs
    assert len((after.header("webhook-signature") or "").split(" ")) == 1
    verify(after, new)
    with pytest.raises(WebhookVerificationError):
        verify(after, old)


@pytest.mark.parametrize("stop", ["delete", "deactivate"])
async def test_stopping_a_subscription_cancels_its_scheduled_retry(
    open_service: OpenService, stop: str
) -> None:
    # Given a delivery whose retry is scheduled 1 s out
    service = await open_service(retry_interval_seconds=1.0)
    with Receiver(default=respond(500)) as receiver:
        subscription = await service.subscribe(receiver.url_for("/hook"))
        delivery_id = await service.publish()
        retrying = await service.wait_for_status(delivery_id, "RETRYING")

        # When the subscription is deleted or deactivated
        if stop == "delete":
            data = await service.api.data(
                DELETE, {"id": subscription.id}, key=service.tenants.key_a
            )
            assert data["deleteWebhookSubscription"]["deletedId"] == subscription.id
        else:
            await set_active(service, subscription.id, False)

        # Then the delivery is cancelled at once
        assert (await service.delivery(delivery_id))["status"] == "CANCELLED"
        # and nothing is sent when its retry would have been due, or later
        await service.wait_for_idle(delivery_id)
        await sleep_until(parse_time(retrying["nextAttemptAt"]) + timedelta(seconds=0.5))
        assert len(receiver.requests) == 1
    delivery = await service.delivery(delivery_id)
    assert (delivery["status"], len(delivery["attempts"])) == ("CANCELLED", 1)


async def test_redelivering_a_cancelled_delivery_sends_at_once(open_service: OpenService) -> None:
    # Given a delivery cancelled while its retry was scheduled a minute out, and the
    # subscription active again
    service = await open_service(retry_interval_seconds=60.0)
    with Receiver() as receiver:
        receiver.script("/hook", [respond(500), respond(200)])
        subscription = await service.subscribe(receiver.url_for("/hook"))
        delivery_id = await service.publish()
        await service.wait_for_status(delivery_id, "RETRYING")
        await set_active(service, subscription.id, False)
        await set_active(service, subscription.id, True)

        # When it is redelivered
        await redeliver(service, delivery_id)

        # Then the new cycle goes out now, not when the old retry would have been due
        delivery = await service.wait_for_status(delivery_id, "SUCCEEDED", timeout=3.0)
    assert [(a["cycle"], a["number"]) for a in delivery["attempts"]] == [(1, 1), (2, 1)]
    assert len(receiver.requests) == 2
