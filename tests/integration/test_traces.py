"""Traces, end to end in one process: the real API (ASGI), the real worker, real receivers,
spans caught by the SDK's in-memory exporter.

A publish is a ``publishEvent`` SERVER span continuing the caller's traceparent, with a
``fan-out`` child; each attempt is a CLIENT span in the same trace, child of and linked to
the publish span (through the traceparent stored with the event, as a worker in another
process finds it), and the receiver gets that attempt span's traceparent. And no secret
value shows up in any span of a whole run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from app.core import tracing
from app.core.masking import MASK
from tests.delivery import (
    PUBLISH,
    OpenService,
    Service,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
)
from tests.payloads import order_status_payload
from tests.receivers import Receiver, respond

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"

SEND_TEST_EVENT = """
mutation($id: ID!) {
  sendTestEvent(subscriptionId: $id) { event { id deliveries { id } } userErrors { message } }
}"""

REDELIVER = """
mutation($id: ID!) {
  redeliver(deliveryId: $id) { delivery { id cycle } userErrors { message } }
}"""


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, every span ended kept in memory (synchronously: no batching to wait for)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.uninstall()
    provider.shutdown()


async def publish(service: Service, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    """publishEvent over HTTP with extra request headers; returns the event."""
    response = await service.api.http.post(
        "/graphql",
        json={
            "query": PUBLISH,
            "variables": {
                "input": {
                    "companyId": service.tenants.a,
                    "webhook": "ORDER_STATUS",
                    "payload": order_status_payload(),
                    "subject": "order-1",
                    **fields,
                }
            },
        },
        headers={"authorization": f"Bearer {service.tenants.publisher}", **headers},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    assert body["data"]["publishEvent"]["userErrors"] == []
    event: dict[str, Any] = body["data"]["publishEvent"]["event"]
    return event


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def traceparent(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-01"


async def test_publish_a_failed_attempt_and_its_successful_retry_make_one_linked_trace(
    open_service: OpenService, spans: InMemorySpanExporter
) -> None:
    # Given a receiver failing once, then answering, and a caller that traces
    service = await open_service(retry_interval_seconds=0.5)
    with Receiver() as receiver:
        receiver.script("/hook", [respond(500, "no"), respond(200)])
        subscription = await service.subscribe(receiver.url_for("/hook"))

        # When the caller publishes with its traceparent
        event = await publish(service, {"traceparent": CALLER, "tracestate": "vendor=1"})
        [delivery] = event["deliveries"]
        done = await service.wait_for_status(delivery["id"], "SUCCEEDED", timeout=8)
        requests = receiver.requests

    # Then publishEvent is a server span in the caller's trace, under the caller's span
    [published] = named(spans, "publishEvent")
    context = published.get_span_context()
    assert context is not None and published.parent is not None
    assert f"{context.trace_id:032x}" == CALLER_TRACE
    assert f"{published.parent.span_id:016x}" == CALLER_SPAN
    assert published.kind is SpanKind.SERVER
    assert published.attributes is not None
    assert published.attributes["webhooks.event.id"] == event["id"]
    assert published.attributes["webhooks.event.subject"] == "order-1"
    assert published.attributes["webhooks.webhook"] == "ORDER_STATUS"
    # the fan-out is its child and counts the deliveries
    [fan_out] = named(spans, "fan-out")
    assert fan_out.parent is not None and fan_out.parent.span_id == context.span_id
    assert fan_out.attributes is not None and fan_out.attributes["webhooks.deliveries"] == 1
    # the event keeps the publish span's traceparent, for workers anywhere
    [stored] = await service.sql("SELECT traceparent FROM events WHERE id = %(id)s", id=event["id"])
    assert stored["traceparent"] == traceparent(published)

    # and each attempt is a client span in that trace, child of and linked to publishEvent
    attempts = sorted(
        named(spans, "webhook attempt"),
        key=lambda span: span.attributes["webhooks.attempt.number"] if span.attributes else 0,
    )
    assert len(attempts) == 2
    for number, span in enumerate(attempts, start=1):
        span_context = span.get_span_context()
        assert span_context is not None and span.parent is not None and span.attributes
        assert span.kind is SpanKind.CLIENT
        assert span_context.trace_id == context.trace_id
        assert span.parent.span_id == context.span_id
        assert [link.context.span_id for link in span.links] == [context.span_id]
        assert span.attributes["webhooks.attempt.number"] == number
        assert span.attributes["webhooks.delivery.id"] == delivery["id"]
        assert span.attributes["webhooks.webhook_id"] == done["webhookId"]
        assert span.attributes["webhooks.subscription.id"] == subscription.id
        assert span.attributes["url.full"] == subscription.callback_url
    failed, succeeded = attempts
    assert failed.attributes is not None and succeeded.attributes is not None
    assert failed.attributes["http.response.status_code"] == 500
    assert failed.attributes["error.type"] == "500"
    assert failed.status.status_code is StatusCode.ERROR
    assert succeeded.attributes["http.response.status_code"] == 200
    assert "error.type" not in succeeded.attributes
    assert succeeded.status.status_code is StatusCode.UNSET
    # and the receiver got each attempt's own traceparent
    assert [request.header("traceparent") for request in requests] == [
        traceparent(failed),
        traceparent(succeeded),
    ]


PUBLISH_EVENTS = """
mutation($input: PublishEventsInput!) {
  publishEvents(input: $input) {
    results { event { id deliveries { id } } userErrors { field code } }
  }
}"""


async def test_each_event_of_a_batch_has_its_own_publish_span_in_the_callers_trace(
    open_service: OpenService, spans: InMemorySpanExporter
) -> None:
    # Given a receiver, and a caller that traces publishing two events and one refused
    service = await open_service()
    with Receiver() as receiver:
        await service.subscribe(receiver.url_for("/hook"))
        events = [
            {
                "companyId": service.tenants.a,
                "webhook": "ORDER_STATUS",
                "payload": order_status_payload(),
                "subject": f"order-{n}",
            }
            for n in range(2)
        ]
        events.append({**events[0], "webhook": "NO_SUCH_WEBHOOK"})
        response = await service.api.http.post(
            "/graphql",
            json={"query": PUBLISH_EVENTS, "variables": {"input": {"events": events}}},
            headers={
                "authorization": f"Bearer {service.tenants.publisher}",
                "traceparent": CALLER,
            },
        )
        results = response.json()["data"]["publishEvents"]["results"]
        published_ids = [result["event"]["id"] for result in results[:2]]
        for result in results[:2]:
            [delivery] = result["event"]["deliveries"]
            await service.wait_for_status(delivery["id"], "SUCCEEDED")
        requests = receiver.requests
    assert results[2]["event"] is None

    # Then every event, the refused one too, is a publishEvent span under the caller's span
    published = named(spans, "publishEvent")
    assert len(published) == 3
    for span in published:
        context = span.get_span_context()
        assert context is not None and span.parent is not None
        assert f"{context.trace_id:032x}" == CALLER_TRACE
        assert f"{span.parent.span_id:016x}" == CALLER_SPAN
    by_event = {
        span.attributes["webhooks.event.id"]: span
        for span in published
        if span.attributes and "webhooks.event.id" in span.attributes
    }
    assert sorted(by_event) == sorted(published_ids)
    # and each event's attempt is the child of its own event's span, not of another's
    for event_id, span in by_event.items():
        [attempt] = [
            attempt
            for attempt in named(spans, "webhook attempt")
            if attempt.attributes and attempt.attributes["webhooks.event.id"] == event_id
        ]
        assert attempt.parent is not None
        assert attempt.parent.span_id == span.get_span_context().span_id
    [stored_a, stored_b] = await service.sql(
        "SELECT traceparent FROM events WHERE id = ANY(%(ids)s) ORDER BY subject",
        ids=published_ids,
    )
    assert stored_a["traceparent"] != stored_b["traceparent"]
    assert len(requests) == 2


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        CALLER + "-" + "x" * 2000,
    ],
)
async def test_a_malformed_traceparent_is_ignored_and_the_publish_starts_a_trace(
    open_service: OpenService, spans: InMemorySpanExporter, header: str
) -> None:
    # Given no worker: only the publish is looked at
    service = await open_service(worker=False)
    await service.subscribe("http://127.0.0.1:9/hook")

    # When a caller sends a malformed traceparent, the event is published all the same
    event = await publish(service, {"traceparent": header, "tracestate": "a=b"})

    # and its span is the root of a trace of its own
    [published] = named(spans, "publishEvent")
    context = published.get_span_context()
    assert context is not None
    assert published.parent is None
    assert f"{context.trace_id:032x}" != CALLER_TRACE
    assert published.attributes is not None
    assert published.attributes["webhooks.event.id"] == event["id"]


async def test_the_traceparent_header_is_a_setting(
    open_service: OpenService, spans: InMemorySpanExporter
) -> None:
    # Given tracing on but WEBHOOKS_SEND_TRACEPARENT off
    service = await open_service(send_traceparent=False)
    with Receiver() as receiver:
        await service.subscribe(receiver.url_for("/hook"))
        delivery_id = await service.publish()
        await service.wait_for_status(delivery_id, "SUCCEEDED")
        [request] = receiver.requests

    # Then the attempt is traced but its request carries no traceparent
    assert len(named(spans, "webhook attempt")) == 1
    assert request.header("traceparent") is None


# What the HTTP client adds on its own, which a request record does not show.
TRANSPORT_HEADERS = {"host", "content-length", "accept", "accept-encoding", "connection"}
REQUESTS_SENT = """
query($id: ID!) {
  delivery(id: $id) { attempts { number request { headers { name value } } } }
}"""


@pytest.mark.parametrize("send_traceparent", [True, False])
async def test_the_request_shown_is_the_one_sent_traceparent_included(
    open_service: OpenService, spans: InMemorySpanExporter, send_traceparent: bool
) -> None:
    # Given tracing on and a subscription with a custom header of that very name
    service = await open_service(send_traceparent=send_traceparent)
    with Receiver() as receiver:
        await service.subscribe(
            receiver.url_for("/hook"),
            headers=[
                {"name": "Traceparent", "value": "custom-value-1"},
                {"name": "X-A", "value": "a"},
            ],
        )
        delivery_id = await service.publish()
        await service.wait_for_status(delivery_id, "SUCCEEDED")
        [request] = receiver.requests
    data = await service.api.data(REQUESTS_SENT, {"id": delivery_id}, key=service.tenants.key_a)
    [attempt] = data["delivery"]["attempts"]
    shown = [(header["name"], header["value"]) for header in attempt["request"]["headers"]]

    # Then DeliveryAttempt.request lists exactly the headers the receiver got, in order
    # (the attempt span's traceparent last, in place of the custom one; a custom value masked)
    custom = {"x-a"} if send_traceparent else {"x-a", "traceparent"}
    expected = [
        (name, MASK if name in custom else value)
        for name, value in request.headers.items()
        if name not in TRANSPORT_HEADERS
    ]
    assert [(name.lower(), value) for name, value in shown] == expected
    [attempt_span] = named(spans, "webhook attempt")
    if send_traceparent:
        context = attempt_span.get_span_context()
        assert context is not None
        assert shown[-1] == ("traceparent", tracing.format_traceparent(context))
    else:
        assert ("Traceparent", MASK) in shown


SUBSCRIBE_TO = """
mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) { subscription { id } userErrors { code } }
}"""


async def test_an_operator_event_continues_the_trace_of_the_attempt_that_caused_it(
    open_service: OpenService, spans: InMemorySpanExporter
) -> None:
    # Given an ORDER_STATUS receiver that always fails, watched by a DELIVERY_FAILED one
    service = await open_service(retry_interval_seconds=0.2, max_attempts=2)
    with Receiver(default=respond(503)) as orders, Receiver() as ops:
        await service.subscribe(orders.url_for("/orders"))
        data = await service.api.data(
            SUBSCRIBE_TO,
            {
                "input": {
                    "webhook": "DELIVERY_FAILED",
                    "callbackUrl": ops.url_for("/ops"),
                    "notificationEmail": "ops@company-a.example",
                }
            },
            key=service.tenants.key_a,
        )
        assert data["createWebhookSubscription"]["userErrors"] == []

        # When a traced publish's delivery fails for good and DELIVERY_FAILED is delivered
        event = await publish(service, {"traceparent": CALLER})
        [delivery] = event["deliveries"]
        await service.wait_for_status(delivery["id"], "FAILED", timeout=8)
        [report] = await asyncio.to_thread(ops.wait_for, 1, 10.0)
        # (its attempt's span ends once the worker has read the answer, after the receiver
        # saw the request)
        await _until(lambda: any(_other_attempts(spans, delivery["id"])))

    # Then the operator event's attempt is in the order's trace, child of and linked to
    # the attempt that failed for good: following order-1 shows who was told, and when
    last_failed = max(
        (
            span
            for span in named(spans, "webhook attempt")
            if span.attributes and span.attributes["webhooks.delivery.id"] == delivery["id"]
        ),
        key=lambda span: span.attributes["webhooks.attempt.number"] if span.attributes else 0,
    )
    [reported] = _other_attempts(spans, delivery["id"])
    cause = last_failed.get_span_context()
    context = reported.get_span_context()
    assert cause is not None and context is not None and reported.parent is not None
    assert f"{context.trace_id:032x}" == CALLER_TRACE
    assert reported.parent.span_id == cause.span_id
    assert [link.context.span_id for link in reported.links] == [cause.span_id]
    assert report.header("traceparent") == tracing.format_traceparent(context)


async def test_with_tracing_off_nothing_is_stored_and_no_traceparent_is_sent(
    open_service: OpenService,
) -> None:
    # Given tracing off (nothing installed) and a caller that traces
    assert not tracing.enabled()
    service = await open_service()
    with Receiver() as receiver:
        await service.subscribe(receiver.url_for("/hook"))
        event = await publish(service, {"traceparent": CALLER})
        [delivery] = event["deliveries"]
        await service.wait_for_status(delivery["id"], "SUCCEEDED")
        [request] = receiver.requests

    # Then a random traceparent would be noise: none is sent, and none is stored
    assert request.header("traceparent") is None
    [stored] = await service.sql("SELECT traceparent FROM events WHERE id = %(id)s", id=event["id"])
    assert stored["traceparent"] is None


API_KEY_VALUE = "apikey-TRACE-0123456789"
HEADER_VALUE = "hdr-TRACE-9876543210"
PAYLOAD_VALUE = "payload-TRACE-5555555555"


async def test_no_secret_value_appears_in_any_span_of_a_whole_run(
    open_service: OpenService, spans: InMemorySpanExporter
) -> None:
    # Given a subscription with an API key parameter and a custom header, a receiver that
    # fails for good (2 attempts), a payload with a private field
    service = await open_service(retry_interval_seconds=0.3, max_attempts=2)
    with Receiver() as receiver:
        receiver.script("/hook", respond(500, f"echo {API_KEY_VALUE} {HEADER_VALUE}"))
        subscription = await service.subscribe(
            receiver.url_for("/hook?tenant=7"),
            api_key_params=[{"name": "api_key", "value": API_KEY_VALUE}],
            headers=[{"name": "Authorization", "value": f"Bearer {HEADER_VALUE}"}],
        )

        # When an event is published, fails for good, is redelivered, a test event is sent
        event = await publish(
            service,
            {"traceparent": CALLER},
            payload=order_status_payload(order_notes=PAYLOAD_VALUE),
        )
        [delivery] = event["deliveries"]
        await service.wait_for_status(delivery["id"], "FAILED", timeout=8)
        redelivered = await service.api.data(
            REDELIVER, {"id": delivery["id"]}, key=service.tenants.key_a
        )
        assert redelivered["redeliver"]["userErrors"] == []
        test_event = await service.api.data(
            SEND_TEST_EVENT, {"id": subscription.id}, key=service.tenants.key_a
        )
        [test_delivery] = test_event["sendTestEvent"]["event"]["deliveries"]
        await service.wait_until(
            lambda: _cycle_two_failed(service, delivery["id"]), 8, lambda: "cycle 2 not over"
        )
        await service.wait_for_status(test_delivery["id"], "FAILED", timeout=8)
        requests = receiver.requests

    # Then the run was traced: 2 publishes, 6 attempts (URL masked) ...
    assert len(named(spans, "publishEvent")) == 1
    assert len(named(spans, "sendTestEvent")) == 1
    attempts = named(spans, "webhook attempt")
    assert len(attempts) == 6
    assert {span.attributes["url.full"] for span in attempts if span.attributes} == {
        subscription.callback_url + f"&api_key={MASK}"
    }
    # ... the receiver got the secrets (that is what they are for) ...
    assert all(API_KEY_VALUE in request.query for request in requests)
    assert all(request.header("authorization") == f"Bearer {HEADER_VALUE}" for request in requests)
    # ... and no span says any of them, nor a key, nor the response
    secrets = [
        API_KEY_VALUE,
        HEADER_VALUE,
        PAYLOAD_VALUE,
        subscription.secret,
        subscription.secret.removeprefix("whsec_"),
        service.tenants.key_a,
        service.tenants.publisher,
        service.settings.secret_key or "",
        "echo",
    ]
    for span in spans.get_finished_spans():
        text = _everything_in(span)
        for secret in secrets:
            assert secret not in text, (secret, span.name)


def _other_attempts(exporter: InMemorySpanExporter, delivery_id: str) -> list[ReadableSpan]:
    """The attempt spans ended so far of deliveries other than ``delivery_id``."""
    return [
        span
        for span in named(exporter, "webhook attempt")
        if span.attributes and span.attributes["webhooks.delivery.id"] != delivery_id
    ]


async def _until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``condition()`` holds, checking every 20 ms; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _cycle_two_failed(service: Service, delivery_id: str) -> bool:
    delivery = await service.delivery(delivery_id)
    return bool(delivery["cycle"] == 2 and delivery["status"] == "FAILED")


def _everything_in(span: ReadableSpan) -> str:
    """Every string a span exports: its name, attributes, events, links, status, resource."""
    parts: list[object] = [
        span.name,
        dict(span.attributes or {}),
        [(event.name, dict(event.attributes or {})) for event in span.events],
        [dict(link.attributes or {}) for link in span.links],
        span.status.description,
        dict(span.resource.attributes),
    ]
    return repr(parts)
