"""Operator events, end to end: the real worker fails, deactivates and recovers real
subscriptions, and the company's operator-event subscriptions receive DELIVERY_FAILED,
SUBSCRIPTION_DEACTIVATED and SUBSCRIPTION_RECOVERED, each once, signed, matching its own
schema, through the same fan-out as publishEvent (filters apply); never about themselves,
never to another company.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import jsonschema_rs
import pytest

from app.delivery.attempts import give_up
from app.delivery.endpoint_health import deactivate_failing_subscriptions
from app.store.database import WORKER_SCOPE, scoped
from tests.catalogue import EXAMPLES
from tests.delivery import (
    OpenService,
    Service,
    Subscription,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
    parse_time,
    verify,
)
from tests.payloads import order_status_payload
from tests.receivers import Receiver, RecordedRequest, respond

FAST = {"retry_interval_seconds": 0.2, "max_attempts": 2}

SUBSCRIBE = """
mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) {
    subscription { id callbackUrl }
    signingSecret
    userErrors { field code message }
  }
}"""

EVENTS = """
query($webhook: String) {
  events(first: 100, filter: {webhook: $webhook}) {
    nodes { id subject payload isTest deliveries { id status subscription { id } } }
  }
}"""

DELIVERIES = """
query($webhook: String) {
  deliveries(first: 100, filter: {webhook: $webhook}) { nodes { id status } }
}"""

REDELIVER = """
mutation($id: ID!) { redeliver(deliveryId: $id) { delivery { id cycle } userErrors { message } } }
"""

SUBSCRIPTION = """
query($id: ID!) { webhookSubscription(id: $id) { id isActive } }
"""


def schema_of(webhook: str) -> Any:
    return json.loads((EXAMPLES / f"{webhook.lower()}.schema.json").read_text(encoding="utf-8"))


async def subscribe(
    service: Service,
    webhook: str,
    url: str,
    *,
    key: str | None = None,
    filter: dict[str, Any] | None = None,
) -> Subscription:
    """Subscribe company A (or the key's company) to ``webhook``."""
    data = await service.api.data(
        SUBSCRIBE,
        {
            "input": {
                "webhook": webhook,
                "callbackUrl": url,
                "notificationEmail": "ops@company.example",
                "filter": filter,
            }
        },
        key=key or service.tenants.key_a,
    )
    payload = data["createWebhookSubscription"]
    assert payload["userErrors"] == [], payload["userErrors"]
    return Subscription(payload["subscription"]["id"], payload["signingSecret"], url)


async def events_of(service: Service, webhook: str, key: str | None = None) -> list[Any]:
    data = await service.api.data(EVENTS, {"webhook": webhook}, key=key or service.tenants.key_a)
    nodes: list[Any] = data["events"]["nodes"]
    return nodes


async def deliveries_of(service: Service, webhook: str, key: str | None = None) -> list[Any]:
    data = await service.api.data(
        DELIVERIES, {"webhook": webhook}, key=key or service.tenants.key_a
    )
    nodes: list[Any] = data["deliveries"]["nodes"]
    return nodes


def received(request: RecordedRequest, subscription: Subscription, webhook: str) -> Any:
    """The operator event's data, once its signature verified and its envelope checked,
    validated against its type's schema."""
    body = verify(request, subscription.secret)
    assert body["webhook"] == webhook
    jsonschema_rs.validator_for(schema_of(webhook)).validate(body["data"])
    assert body["subject"] == body["data"]["subscription_id"]
    return body["data"]


def same_moment(event_time: str, api_time: str) -> bool:
    """An event's time (milliseconds) is the API's (microseconds), cut to milliseconds."""
    difference = parse_time(api_time) - parse_time(event_time)
    return timedelta(0) <= difference < timedelta(milliseconds=1)


async def arrived(receiver: Receiver, count: int, *, path: str | None = None) -> Any:
    """Wait for ``count`` requests without blocking the event loop the worker runs in."""
    return await asyncio.to_thread(receiver.wait_for, count, 10.0, path=path)


async def settle(service: Service, seconds: float = 1.5) -> None:
    """Let the worker run on for a while (fast retries: several rounds of them)."""
    await asyncio.sleep(seconds)
    service.check_worker()


async def test_a_delivery_failing_for_good_emits_delivery_failed_once(
    open_service: OpenService,
) -> None:
    # Given an ORDER_STATUS subscription whose receiver always fails, and an operator
    # subscription to DELIVERY_FAILED
    service = await open_service(**FAST)
    with Receiver(default=respond(503)) as orders, Receiver() as ops:
        order_subscription = await service.subscribe(orders.url_for("/orders?tenant=a"))
        watcher = await subscribe(service, "DELIVERY_FAILED", ops.url_for("/ops"))

        # When an event is published and its delivery uses all its attempts
        delivery_id = await service.publish()
        delivery = await service.wait_for_status(delivery_id, "FAILED")
        [request] = await arrived(ops, 1)
        await settle(service)
        requests = ops.requests

    # Then one DELIVERY_FAILED arrived, signed, matching its schema, saying what failed
    assert requests == [request]
    data = received(request, watcher, "DELIVERY_FAILED")
    assert data == {
        "subscription_id": order_subscription.id,
        "webhook": "ORDER_STATUS",
        "callback_url": order_subscription.callback_url,
        "delivery_id": delivery_id,
        "webhook_id": delivery["webhookId"],
        "event_id": delivery["event"]["id"],
        "subject": "order-1",
        "cycle": 1,
        "attempt_count": 2,
        "last_response_status": 503,
        "error_kind": "HTTP_STATUS",
        "last_attempt_at": data["last_attempt_at"],
        "failed_at": data["failed_at"],
    }
    assert same_moment(data["last_attempt_at"], delivery["attempts"][-1]["startedAt"])
    assert parse_time(data["failed_at"]) >= parse_time(data["last_attempt_at"])
    # ... and the company sees it among its events like any other
    [event] = await events_of(service, "DELIVERY_FAILED")
    assert event["subject"] == order_subscription.id and event["isTest"] is False
    assert [d["status"] for d in event["deliveries"]] == ["SUCCEEDED"]


async def test_a_redelivery_failing_again_emits_again_for_its_cycle(
    open_service: OpenService,
) -> None:
    # Given a delivery that failed for good, reported once
    service = await open_service(**FAST)
    with Receiver(default=respond(500)) as orders, Receiver() as ops:
        await service.subscribe(orders.url_for("/orders"))
        watcher = await subscribe(service, "DELIVERY_FAILED", ops.url_for("/ops"))
        delivery_id = await service.publish()
        await service.wait_for_status(delivery_id, "FAILED")
        await arrived(ops, 1)

        # When it is redelivered and fails for good again
        data = await service.api.data(REDELIVER, {"id": delivery_id}, key=service.tenants.key_a)
        assert data["redeliver"]["userErrors"] == []
        await service.wait_until(
            lambda: _cycle_failed(service, delivery_id, 2), explain=lambda: "cycle 2 not failed"
        )
        await arrived(ops, 2)
        await settle(service)
        requests = ops.requests

    # Then each cycle was reported once
    assert sorted(received(r, watcher, "DELIVERY_FAILED")["cycle"] for r in requests) == [1, 2]


async def _cycle_failed(service: Service, delivery_id: str, cycle: int) -> bool:
    delivery = await service.delivery(delivery_id)
    return bool(delivery["cycle"] == cycle and delivery["status"] == "FAILED")


async def test_a_410_emits_subscription_deactivated_gone_and_filters_apply(
    open_service: OpenService,
) -> None:
    # Given a subscription whose endpoint is gone, and two operator subscriptions to
    # SUBSCRIPTION_DEACTIVATED: one for GONE only, one for FAILING only
    service = await open_service(**FAST, disable_after_failing_seconds=3600.0)
    with Receiver(default=respond(410)) as orders, Receiver() as ops:
        gone_subscription = await service.subscribe(orders.url_for("/gone"))
        gone_watch = await subscribe(
            service,
            "SUBSCRIPTION_DEACTIVATED",
            ops.url_for("/gone-only"),
            filter={"reason": "GONE"},
        )
        failing_watch = await subscribe(
            service,
            "SUBSCRIPTION_DEACTIVATED",
            ops.url_for("/failing-only"),
            filter={"reason": "FAILING"},
        )

        # When a delivery to it is answered 410
        delivery_id = await service.publish()
        await service.wait_for_status(delivery_id, "FAILED")
        await arrived(ops, 1, path="/gone-only")
        await settle(service)
        gone_requests = ops.requests_to("/gone-only")

        # Then only the GONE subscription got it: one event, reason GONE, the 410's delivery
        assert ops.requests_to("/failing-only") == []
        [request] = gone_requests
        data = received(request, gone_watch, "SUBSCRIPTION_DEACTIVATED")
        delivery = await service.delivery(delivery_id)
        assert {key: data[key] for key in ("subscription_id", "reason", "delivery_id")} == {
            "subscription_id": gone_subscription.id,
            "reason": "GONE",
            "delivery_id": delivery_id,
        }
        assert (data["webhook_id"], data["last_response_status"]) == (delivery["webhookId"], 410)
        assert parse_time(data["failing_since"]) <= parse_time(data["deactivated_at"])
        subscription = await service.api.data(
            SUBSCRIPTION, {"id": gone_subscription.id}, key=service.tenants.key_a
        )
        assert subscription["webhookSubscription"]["isActive"] is False

        # When another subscription fails for the whole period and the health check runs
        with Receiver(default=respond(500)) as dead:
            failing = await service.subscribe(dead.url_for("/failing"))
            long_ago = await service.publish(subject="order-2")
            await service.wait_for_status(long_ago, "FAILED")
            recently = await service.publish(subject="order-3")
            await service.wait_for_status(recently, "FAILED")
        await service.sql(
            "UPDATE deliveries SET completed_at = now() - interval '2 hours' WHERE id = %(id)s",
            id=long_ago,
        )
        with scoped(WORKER_SCOPE):
            await deactivate_failing_subscriptions(service.services)
        await arrived(ops, 1, path="/failing-only")
        await settle(service)

        # Then the FAILING subscription got one event, reason FAILING, and GONE's no more
        [request] = ops.requests_to("/failing-only")
        data = received(request, failing_watch, "SUBSCRIPTION_DEACTIVATED")
        assert (data["subscription_id"], data["reason"]) == (failing.id, "FAILING")
        assert (data["delivery_id"], data["webhook_id"], data["last_response_status"]) == (
            None,
            None,
            None,
        )
        assert data["failing_since"] is not None
        assert len(ops.requests_to("/gone-only")) == 1
    assert len(await events_of(service, "SUBSCRIPTION_DEACTIVATED")) == 2


async def test_a_failing_subscription_that_delivers_again_emits_recovered_once(
    open_service: OpenService,
) -> None:
    # Given a subscription whose receiver fails twice (one delivery FAILED), then answers
    service = await open_service(**FAST)
    with Receiver() as orders, Receiver() as ops:
        orders.script("/orders", [respond(500), respond(500), respond(200)])
        order_subscription = await service.subscribe(orders.url_for("/orders"))
        watcher = await subscribe(service, "SUBSCRIPTION_RECOVERED", ops.url_for("/ops"))
        failed = await service.publish(subject="order-1")
        failed_delivery = await service.wait_for_status(failed, "FAILED")
        await settle(service, 0.5)
        assert ops.requests == []  # failing is not recovering

        # When the next two deliveries succeed
        recovering = await service.publish(subject="order-2")
        recovered = await service.wait_for_status(recovering, "SUCCEEDED")
        [request] = await arrived(ops, 1)
        later = await service.publish(subject="order-3")
        await service.wait_for_status(later, "SUCCEEDED")
        await settle(service)
        requests = ops.requests

    # Then the first success emitted SUBSCRIPTION_RECOVERED, once; the second nothing
    assert requests == [request]
    data = received(request, watcher, "SUBSCRIPTION_RECOVERED")
    assert {key: data[key] for key in ("subscription_id", "delivery_id", "subject")} == {
        "subscription_id": order_subscription.id,
        "delivery_id": recovering,
        "subject": "order-2",
    }
    assert (data["attempt_count"], data["last_response_status"]) == (1, 200)
    failed_at = parse_time(failed_delivery["completedAt"])
    assert abs(parse_time(data["failing_since"]) - failed_at) < timedelta(seconds=1)
    assert same_moment(data["recovered_at"], recovered["attempts"][0]["startedAt"])
    assert len(await events_of(service, "SUBSCRIPTION_RECOVERED")) == 1


async def test_successes_at_once_to_a_failing_subscription_emit_one_recovered(
    open_service: OpenService,
) -> None:
    # Given a failing subscription whose receiver now answers, and successes that take
    # a while to record (a trigger sleeps), so that their transactions overlap
    service = await open_service(**FAST)
    await service.sql(
        "CREATE FUNCTION slow_record() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN PERFORM pg_sleep(0.3); RETURN NULL; END; $$"
    )
    await service.sql(
        "CREATE TRIGGER slow_record AFTER INSERT ON delivery_attempts"
        " FOR EACH ROW WHEN (NEW.succeeded) EXECUTE FUNCTION slow_record()"
    )
    with Receiver() as orders, Receiver() as ops:
        orders.script("/orders", [respond(500), respond(500), respond(200)])
        await service.subscribe(orders.url_for("/orders"))
        await subscribe(service, "SUBSCRIPTION_RECOVERED", ops.url_for("/ops"))
        failed = await service.publish(subject="order-0")
        await service.wait_for_status(failed, "FAILED")

        # When five deliveries succeed at about the same moment
        deliveries = await asyncio.gather(
            *(service.publish(subject=f"order-{n}") for n in range(1, 6))
        )
        for delivery_id in deliveries:
            await service.wait_for_status(delivery_id, "SUCCEEDED")
        await arrived(ops, 1)
        await settle(service)
        requests = ops.requests

    # Then the subscription recovered once
    assert len(requests) == 1
    assert len(await events_of(service, "SUBSCRIPTION_RECOVERED")) == 1


async def test_a_failing_operator_subscription_emits_nothing_about_itself(
    open_service: OpenService,
) -> None:
    # Given a failing ORDER_STATUS subscription, an operator subscription to DELIVERY_FAILED
    # whose receiver always fails, and healthy watchers of every operator event
    service = await open_service(**FAST)
    with Receiver(default=respond(500)) as dead, Receiver() as ops:
        await service.subscribe(dead.url_for("/orders"))
        failing_watch = await subscribe(service, "DELIVERY_FAILED", dead.url_for("/ops-dead"))
        for webhook in ("SUBSCRIPTION_DEACTIVATED", "SUBSCRIPTION_RECOVERED"):
            await subscribe(service, webhook, ops.url_for(f"/{webhook}"))

        # When an order delivery fails for good, and the DELIVERY_FAILED about it fails too
        first = await service.publish(subject="order-1")
        await service.wait_for_status(first, "FAILED")
        await service.wait_until(
            lambda: _all_final(service, "DELIVERY_FAILED", 1), explain=lambda: "still sending"
        )
        # ... and then its endpoint answers 410: it is deactivated
        dead.script("/ops-dead", respond(410))
        second = await service.publish(subject="order-2")
        await service.wait_for_status(second, "FAILED")
        await service.wait_until(
            lambda: _all_final(service, "DELIVERY_FAILED", 2), explain=lambda: "still sending"
        )
        await settle(service)
        counts = await _counts(service)
        await settle(service)

        # Then exactly the two DELIVERY_FAILED about the order deliveries exist; nothing
        # about the operator subscription's own failures or its deactivation, and it stays so
        assert counts == {
            "ORDER_STATUS": (2, ["FAILED", "FAILED"]),
            "DELIVERY_FAILED": (2, ["FAILED", "FAILED"]),
            "SUBSCRIPTION_DEACTIVATED": (0, []),
            "SUBSCRIPTION_RECOVERED": (0, []),
        }
        assert await _counts(service) == counts
        assert len(dead.requests_to("/ops-dead")) == 3  # 500, 500, then 410
        assert ops.requests == []
    subscription = await service.api.data(
        SUBSCRIPTION, {"id": failing_watch.id}, key=service.tenants.key_a
    )
    assert subscription["webhookSubscription"]["isActive"] is False


async def _all_final(service: Service, webhook: str, count: int) -> bool:
    deliveries = await deliveries_of(service, webhook)
    return len(deliveries) == count and all(
        d["status"] in ("SUCCEEDED", "FAILED", "CANCELLED") for d in deliveries
    )


async def _counts(service: Service) -> dict[str, tuple[int, list[str]]]:
    counts = {}
    for webhook in (
        "ORDER_STATUS",
        "DELIVERY_FAILED",
        "SUBSCRIPTION_DEACTIVATED",
        "SUBSCRIPTION_RECOVERED",
    ):
        events = await events_of(service, webhook)
        statuses = sorted(d["status"] for d in await deliveries_of(service, webhook))
        counts[webhook] = (len(events), statuses)
    return counts


async def test_company_b_never_receives_nor_sees_company_a_operator_events(
    open_service: OpenService,
) -> None:
    # Given company B subscribed to DELIVERY_FAILED, and company A's failing subscription
    service = await open_service(**FAST)
    with Receiver(default=respond(500)) as orders, Receiver() as ops:
        await service.subscribe(orders.url_for("/orders"))
        await subscribe(service, "DELIVERY_FAILED", ops.url_for("/b"), key=service.tenants.key_b)
        await subscribe(service, "DELIVERY_FAILED", ops.url_for("/a"))

        # When A's delivery fails for good
        delivery_id = await service.publish()
        await service.wait_for_status(delivery_id, "FAILED")
        await arrived(ops, 1, path="/a")
        await settle(service)

        # Then A got its event; B received nothing, and sees no event or delivery of it
        assert ops.requests_to("/b") == []
    assert len(await events_of(service, "DELIVERY_FAILED")) == 1
    key_b = service.tenants.key_b
    assert await events_of(service, "DELIVERY_FAILED", key=key_b) == []
    assert await deliveries_of(service, "DELIVERY_FAILED", key=key_b) == []


async def test_a_failed_recording_emits_nothing_and_giving_up_later_emits_once(
    open_service: OpenService,
) -> None:
    # Given recording a delivery's end fails (a trigger refuses its failure report),
    # and a subscription to DELIVERY_FAILED
    service = await open_service(**{**FAST, "max_attempts": 1})
    await service.sql(
        "CREATE FUNCTION refuse_report() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'disk on fire'; END; $$"
    )
    await service.sql(
        "CREATE TRIGGER refuse_report BEFORE INSERT ON failed_delivery_reports"
        " FOR EACH ROW EXECUTE FUNCTION refuse_report()"
    )
    with Receiver(default=respond(500)) as orders, Receiver() as ops:
        await service.subscribe(orders.url_for("/orders"))
        await subscribe(service, "DELIVERY_FAILED", ops.url_for("/ops"))

        # When its last attempt is made and cannot be recorded
        delivery_id = await service.publish()
        await arrived(orders, 1)
        await service.wait_for_idle(delivery_id)
        await settle(service, 0.5)

        # Then no event was emitted: it rolled back with the failure it was about
        assert (await service.delivery(delivery_id))["status"] == "PENDING"
        assert await events_of(service, "DELIVERY_FAILED") == []
        assert ops.requests == []

        # When the database works again and the delivery is given up on, twice
        await service.sql("DROP TRIGGER refuse_report ON failed_delivery_reports")
        with scoped(WORKER_SCOPE):
            assert await give_up(service.services, uuid.UUID(delivery_id), "lost") == "failed"
            assert await give_up(service.services, uuid.UUID(delivery_id), "lost") == "skipped"
        [request] = await arrived(ops, 1)
        await settle(service)
        assert len(ops.requests) == 1

    # Then exactly one DELIVERY_FAILED, of kind GIVEN_UP
    assert json.loads(request.body)["data"]["error_kind"] == "GIVEN_UP"
    assert len(await events_of(service, "DELIVERY_FAILED")) == 1


@pytest.mark.parametrize("webhook", ["DELIVERY_FAILED", "SUBSCRIPTION_RECOVERED"])
async def test_the_publisher_cannot_forge_an_operator_event(
    open_service: OpenService, webhook: str
) -> None:
    service = await open_service(worker=False)
    data = await service.api.data(
        """mutation($input: PublishEventInput!) {
             publishEvent(input: $input) { event { id } userErrors { field code message } }
           }""",
        {
            "input": {
                "companyId": service.tenants.a,
                "webhook": webhook,
                "payload": json.loads(
                    (EXAMPLES / f"{webhook.lower()}.sample.json").read_text(encoding="utf-8")
                ),
            }
        },
        key=service.tenants.publisher,
    )
    assert data["publishEvent"]["event"] is None
    [error] = data["publishEvent"]["userErrors"]
    assert (error["field"], error["code"]) == (["input", "webhook"], "INVALID")
    assert await service.sql("SELECT id FROM events") == []


async def test_a_test_event_to_an_operator_subscription_carries_its_sample(
    open_service: OpenService,
) -> None:
    # Given an operator subscription (the publisher may not publish its type)
    service = await open_service()
    with Receiver() as ops:
        watcher = await subscribe(service, "SUBSCRIPTION_RECOVERED", ops.url_for("/ops"))

        # When its company asks for a test event
        data = await service.api.data(
            "mutation($id: ID!) { sendTestEvent(subscriptionId: $id) {"
            " event { id isTest } userErrors { message } } }",
            {"id": watcher.id},
            key=service.tenants.key_a,
        )
        assert data["sendTestEvent"]["userErrors"] == []
        [request] = await arrived(ops, 1)

    # Then it arrives as any test event: marked, with the type's sample as its data
    body = verify(request, watcher.secret)
    sample = (EXAMPLES / "subscription_recovered.sample.json").read_text(encoding="utf-8")
    assert (body["webhook"], body["test"], body["data"]) == (
        "SUBSCRIPTION_RECOVERED",
        True,
        json.loads(sample),
    )


PUBLISHER_READS = """
query($id: ID!) {
  event(id: $id) { id payload }
  events(first: 100) { nodes { id webhook { key } payload } }
}"""


async def test_the_publisher_neither_reads_operator_events_nor_can_suppress_one(
    open_service: OpenService,
) -> None:
    # Given a failing ORDER_STATUS subscription watched by a DELIVERY_FAILED subscription,
    # and a delivery whose operator event's idempotency key anyone can derive from its id
    service = await open_service(retry_interval_seconds=1.0, max_attempts=2)
    with Receiver(default=respond(503)) as orders, Receiver() as ops:
        await service.subscribe(orders.url_for("/orders?token=tenant-secret"))
        watcher = await subscribe(service, "DELIVERY_FAILED", ops.url_for("/ops"))
        delivery_id = await service.publish()

        # When the order system takes that key first, for an event of its own
        taken = await service.api.data(
            PUBLISH_WITH_KEY,
            {
                "input": {
                    "companyId": service.tenants.a,
                    "webhook": "ORDER_STATUS",
                    "payload": order_status_payload(),
                    "subject": "order-2",
                    "idempotencyKey": f"DELIVERY_FAILED:{delivery_id}:1",
                }
            },
            key=service.tenants.publisher,
        )
        assert taken["publishEvent"]["userErrors"] == []
        await service.wait_for_status(delivery_id, "FAILED", timeout=8)
        requests = await arrived(ops, 2)
        reported = [received(request, watcher, "DELIVERY_FAILED") for request in requests]
        operator_events = await events_of(service, "DELIVERY_FAILED")
        assert len(operator_events) == 2  # the order system's own event failed too

        # Then the delivery's failure is reported all the same (the keys do not collide)
        assert delivery_id in [data["delivery_id"] for data in reported]
        # and the publisher, which reads every company's events, reads none of these:
        # their payloads name subscriptions' callback URLs (query strings included)
        seen = await service.api.data(
            PUBLISHER_READS, {"id": operator_events[0]["id"]}, key=service.tenants.publisher
        )
    assert seen["event"] is None
    assert [node["webhook"]["key"] for node in seen["events"]["nodes"]] == ["ORDER_STATUS"] * 2
    assert "tenant-secret" not in json.dumps(seen)


PUBLISH_WITH_KEY = """
mutation($input: PublishEventInput!) {
  publishEvent(input: $input) { event { id } userErrors { field code message } }
}"""
