"""What one attempt comes to, end to end: published through the API, sent by the real
worker to a real receiver, recorded and shown through the API.

The delivery contract: a 2xx answer is success; everything else (redirects, 4xx, 5xx,
timeouts, refused or broken connections) is a failure that is recorded in words and
retried. Every request is signed so that ``standardwebhooks`` verifies it, and carries
exactly the documented headers, query string and body.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.delivery.attempts import record_outcome
from app.delivery.outgoing import OutgoingDelivery, outgoing_from_row
from app.delivery.transport import AttemptOutcome
from app.store.database import WORKER_SCOPE, scoped
from tests.delivery import (
    DEFAULTS,
    OpenService,
    Raised,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
    parse_time,
    verify,
)
from tests.payloads import order_status_payload
from tests.receivers import (
    Receiver,
    Reply,
    close_mid_response,
    hang,
    huge_body,
    redirect,
    respond,
    unused_port,
)
from tests.smtp import SmtpTestServer

RETRY_INTERVAL = timedelta(seconds=DEFAULTS["retry_interval_seconds"])


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_a_2xx_answer_succeeds_after_one_attempt(
    open_service: OpenService, status: int
) -> None:
    # Given a receiver answering with a 2xx status
    service = await open_service()
    body = b"" if status == 204 else b'{"received": true}'
    with Receiver(default=respond(status, body)) as receiver:
        subscription = await service.subscribe(receiver.url_for("/hook"))

        # When an event is published
        delivery_id = await service.publish()

        # Then one attempt succeeds and nothing is scheduled
        delivery = await service.wait_for_status(delivery_id, "SUCCEEDED")
        [request] = receiver.requests
    verify(request, subscription.secret)
    assert (delivery["attemptCount"], delivery["nextAttemptAt"]) == (1, None)
    assert delivery["completedAt"] is not None
    [attempt] = delivery["attempts"]
    assert attempt["responseStatus"] == status
    assert attempt["responseBody"] == body.decode()
    assert (attempt["number"], attempt["cycle"], attempt["succeeded"], attempt["error"]) == (
        1,
        1,
        True,
        None,
    )


# (reply, recorded response status, recorded error); None as reply: nothing listens.
FAILURES: dict[str, tuple[Reply | None, int | None, str]] = {
    "301": (redirect("/moved-here"), 301, "redirect (301) not followed"),
    "400": (respond(400, "bad request"), 400, "HTTP 400"),
    "404": (respond(404, "not found"), 404, "HTTP 404"),
    "500": (respond(500, "internal error"), 500, "HTTP 500"),
    "503": (respond(503, "unavailable"), 503, "HTTP 503"),
    "timeout": (hang(3.0), None, "timed out after 0.5 s"),
    "refused": (None, None, "connection refused"),
    # The status line arrived, the rest did not: no status is recorded.
    "closed-mid-response": (
        close_mid_response(promised=5000),
        None,
        "connection closed before a full response (status 200)",
    ),
}


@pytest.mark.parametrize(("reply", "status", "error"), FAILURES.values(), ids=FAILURES.keys())
async def test_any_other_outcome_is_recorded_and_retried(
    open_service: OpenService, reply: Reply | None, status: int | None, error: str
) -> None:
    # Given a receiver that misbehaves in one way (or no receiver at all)
    service = await open_service(request_timeout_seconds=0.5)
    with Receiver(default=reply or respond(200)) as receiver:
        url = receiver.url_for("/hook") if reply else f"http://127.0.0.1:{unused_port()}/hook"
        subscription = await service.subscribe(url)

        # When an event is published
        delivery_id = await service.publish()

        # Then the failure is recorded in words and the next attempt is scheduled
        delivery = await service.wait_for_status(delivery_id, "RETRYING")
        requests = receiver.requests
    [attempt] = delivery["attempts"]
    assert (attempt["succeeded"], attempt["responseStatus"], attempt["error"]) == (
        False,
        status,
        error,
    )
    assert delivery["attemptCount"] == 1
    finished = parse_time(attempt["startedAt"]) + timedelta(milliseconds=attempt["durationMs"])
    next_attempt = parse_time(delivery["nextAttemptAt"])
    assert abs(next_attempt - (finished + RETRY_INTERVAL)) < timedelta(seconds=1)

    # and whatever arrived was signed, once, and no redirect was followed
    assert len(requests) == (0 if reply is None else 1)
    for request in requests:
        assert request.path == "/hook"
        verify(request, subscription.secret)


async def test_the_request_carries_the_documented_headers_query_and_body(
    open_service: OpenService,
) -> None:
    # Given a subscription whose URL has a query string, plus an API key parameter
    service = await open_service()
    with Receiver() as receiver:
        subscription = await service.subscribe(
            receiver.url_for("/hooks/orders?tenant=a&region=us"),
            api_key_params=[{"name": "api_key", "value": "key-value-5f3a9c1e"}],
        )
        payload = order_status_payload(order_status="assembly", tags=["a", "ü"], n=1.5)

        # When an event is published
        event = await service.publish_event(payload, subject="ord_1")
        [delivery_ref] = event["deliveries"]
        delivery = await service.wait_for_status(delivery_ref["id"], "SUCCEEDED")
        [request] = receiver.requests

    # Then the receiver can verify it with the off-the-shelf library
    assert verify(request, subscription.secret) == json.loads(request.body)
    # and the request is a POST whose query keeps the URL's parameters, key appended
    assert (request.method, request.path) == ("POST", "/hooks/orders")
    assert request.query == "tenant=a&region=us&api_key=key-value-5f3a9c1e"
    # and the headers are the documented ones
    webhook_id = request.header("webhook-id")
    assert webhook_id == delivery["webhookId"]
    assert re.fullmatch(r"msg_[0-9a-f]{32}", webhook_id)
    assert abs(int(request.header("webhook-timestamp") or 0) - time.time()) < 5
    signature = request.header("webhook-signature") or ""
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", signature)
    assert request.header("webhook-attempt") == "1"
    assert re.fullmatch(r"PlanOmatic-Webhooks/\S+", request.header("user-agent") or "")
    assert request.header("content-type") == "application/json"
    # and the body is exactly the envelope around the publisher's payload
    body = request.json()
    assert list(body) == ["id", "webhook", "companyId", "subject", "createdAt", "data"]
    assert body == {
        "id": event["id"],
        "webhook": "ORDER_STATUS",
        "companyId": service.tenants.a,
        "subject": "ord_1",
        "createdAt": body["createdAt"],
        "data": payload,
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["createdAt"])


async def test_a_redirect_is_not_followed(open_service: OpenService) -> None:
    # Given a receiver that redirects to another path of its own
    service = await open_service()
    with Receiver() as receiver:
        receiver.script("/hook", redirect("/moved-here"))
        await service.subscribe(receiver.url_for("/hook"))

        # When an event is published and its first attempt fails
        delivery_id = await service.publish()
        await service.wait_for_status(delivery_id, "RETRYING")

        # Then the redirect target received nothing
        assert [request.path for request in receiver.requests] == ["/hook"]
        assert receiver.requests_to("/moved-here") == []


async def test_the_recorded_response_body_is_at_most_4096_characters(
    open_service: OpenService,
) -> None:
    # Given a receiver that fails with a 1 MB body
    service = await open_service()
    with Receiver(default=huge_body(1024 * 1024, status=500)) as receiver:
        await service.subscribe(receiver.url_for("/hook"))

        # When an event is published
        delivery_id = await service.publish()
        delivery = await service.wait_for_status(delivery_id, "RETRYING")

    # Then its first 4096 characters are kept
    [attempt] = delivery["attempts"]
    assert (attempt["responseStatus"], attempt["error"]) == (500, "HTTP 500")
    assert attempt["responseBody"] == "x" * 4096


SUBSCRIPTION = """
query($id: ID!) { webhookSubscription(id: $id) { isActive } }"""


async def test_a_410_gone_fails_at_once_and_deactivates_the_subscription(
    open_service: OpenService,
) -> None:
    # Given a subscription with a delivery waiting for its retry
    with SmtpTestServer() as smtp, Receiver() as receiver:
        service = await open_service(smtp_url=smtp.url)
        receiver.script("/hook", [respond(500), respond(410, "gone")])
        subscription = await service.subscribe(receiver.url_for("/hook"))
        waiting = await service.publish(subject="ord_1")
        await service.wait_for_status(waiting, "RETRYING")

        # When the endpoint answers another delivery with 410 Gone
        gone = await service.publish(subject="ord_2")

        # Then that delivery fails after one attempt, with no retry
        delivery = await service.wait_for_status(gone, "FAILED")
        assert (delivery["attemptCount"], delivery["nextAttemptAt"]) == (1, None)
        assert delivery["attempts"][0]["error"] == "HTTP 410"
        # and the subscription is deactivated, its waiting delivery cancelled
        data = await service.api.data(
            SUBSCRIPTION, {"id": subscription.id}, key=service.tenants.key_a
        )
        assert data["webhookSubscription"]["isActive"] is False
        assert (await service.delivery(waiting))["status"] == "CANCELLED"
        # and the email says why delivery stopped
        [mail] = await smtp.wait_for_async(1)
    body = mail.message.get_body(preferencelist=("plain",))
    assert body is not None
    text = " ".join(body.get_content().split())
    assert "the endpoint answered 410 Gone, so the subscription was deactivated" in text
    assert "Subject: ord_2" in text
    assert len(receiver.requests) == 2


GONE_ROUNDS = 40
CLOSE = {
    "deactivate": "mutation($id: ID!) { updateWebhookSubscription(input: {id: $id,"
    " isActive: false}) { userErrors { code } } }",
    "delete": "mutation($id: ID!) { deleteWebhookSubscription(id: $id) { deletedId } }",
}


async def test_a_410_recorded_while_the_subscription_is_closed_never_deadlocks(
    open_service: OpenService,
) -> None:
    # Given (no worker) subscriptions, each with two deliveries open
    service = await open_service(worker=False)
    raised = Raised()

    gone = AttemptOutcome(
        succeeded=False,
        status=410,
        body_excerpt="gone",
        error="HTTP 410",
        duration_ms=1,
        started_at=datetime.now(UTC),
    )

    async def record(delivery: OutgoingDelivery) -> None:
        with scoped(WORKER_SCOPE):
            await record_outcome(service.services, delivery, 1, 1, gone, "http://x/")

    for round_ in range(GONE_ROUNDS):
        subscription = await service.subscribe(f"http://127.0.0.1:9/gone/{round_}")
        answered, other = [await service.publish(subject=f"ord_{n}") for n in (1, 2)]
        with scoped(WORKER_SCOPE):
            row = await service.services.db.fetch_one(
                "load_attempt_contexts", ids=[uuid.UUID(answered)]
            )
        assert row is not None
        delivery = outgoing_from_row(row)

        # When the worker records one's 410 Gone (delivery, then subscription) while the
        # subscription is deactivated (even rounds) or deleted (odd ones) through the API
        # (subscription, then deliveries), at once
        way = "deactivate" if round_ % 2 == 0 else "delete"
        close = service.api.data(CLOSE[way], {"id": subscription.id}, key=service.tenants.key_a)

        await asyncio.gather(raised.by(record(delivery), "410"), raised.by(close, way))

        # Then both succeed: the 410'd delivery FAILED (or CANCELLED, closed first), the
        # other CANCELLED
        assert raised.errors == [], round_
        assert (await service.delivery(other))["status"] == "CANCELLED"
        assert (await service.delivery(answered))["status"] in ("FAILED", "CANCELLED")
