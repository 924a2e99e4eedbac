"""Receivers that answer in unusual ways, end to end: published through the API, sent by
the real worker, recorded and shown through the API.

Whatever bytes a receiver sends back are recordable: the excerpt shows each NUL and each
invalid UTF-8 byte as U+FFFD (PostgreSQL text cannot hold U+0000). Each attempt is sent
exactly once and recorded, and a 2xx still succeeds.
"""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import pytest

from tests.delivery import (
    CREATE_SUBSCRIPTION,
    PUBLISH,
    OpenService,
    Service,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
)
from tests.payloads import order_status_payload
from tests.raw_receiver import RawConnection, RawReceiver, RawRequest
from tests.receivers import Receiver, Reply, respond

BODIES: dict[str, tuple[Reply, str]] = {
    # .NET stacks answer in UTF-16 at times
    "utf-16": (respond(200, "ok".encode("utf-16-le")), "o\ufffdk\ufffd"),
    "binary": (
        respond(200, b"\x89PNG\r\n\x1a\n\x00\x00\xff"),
        "\ufffdPNG\r\n\x1a\n\ufffd\ufffd\ufffd",
    ),
    "gzip-of-zeros": (
        respond(200, gzip.compress(b"\x00" * 64), headers={"Content-Encoding": "gzip"}),
        "\ufffd" * 64,
    ),
}


@pytest.mark.parametrize(("reply", "shown"), BODIES.values(), ids=BODIES.keys())
async def test_any_response_body_is_recorded_and_sent_once(
    open_service: OpenService, reply: Reply, shown: str
) -> None:
    # Given a receiver answering 200 with bytes PostgreSQL text cannot hold as they are
    service = await open_service()
    with Receiver(default=reply) as receiver:
        await service.subscribe(receiver.url_for("/hook"))

        # When an event is published
        delivery_id = await service.publish()

        # Then the delivery succeeds after one attempt, recorded with the body as shown
        delivery = await service.wait_for_status(delivery_id, "SUCCEEDED")
        await service.wait_for_idle(delivery_id)
        await asyncio.sleep(0.5)  # a re-send would come within the job's retry wait
        requests = receiver.requests
    [attempt] = delivery["attempts"]
    assert (attempt["responseStatus"], attempt["succeeded"], attempt["error"]) == (200, True, None)
    assert attempt["responseBody"] == shown
    # and the receiver got it exactly once
    assert len(requests) == 1


async def subscribe_company_b(service: Service, callback_url: str) -> None:
    data = await service.api.data(
        CREATE_SUBSCRIPTION,
        {
            "input": {
                "webhook": "ORDER_STATUS",
                "callbackUrl": callback_url,
                "notificationEmail": "ops@company-b.example",
            }
        },
        key=service.tenants.key_b,
    )
    assert data["createWebhookSubscription"]["userErrors"] == []


async def publish_for_company_b(service: Service) -> str:
    data: dict[str, Any] = await service.api.data(
        PUBLISH,
        {
            "input": {
                "companyId": service.tenants.b,
                "webhook": "ORDER_STATUS",
                "payload": order_status_payload(),
                "subject": "order-b",
            }
        },
        key=service.tenants.publisher,
    )
    [delivery] = data["publishEvent"]["event"]["deliveries"]
    return str(delivery["id"])


async def test_a_204_with_a_body_succeeds_and_the_next_company_s_delivery_too(
    open_service: OpenService,
) -> None:
    # Given one host serving two companies, answering company A's hook with a 204 that
    # carries a body ("Content-Length: 2", "ok"), sent with the head or a moment after
    def sloppy_204(connection: RawConnection, request: RawRequest) -> None:
        connection.send(b"HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\n")
        connection.next_request(timeout=0.2)
        connection.send(b"ok")

    service = await open_service()
    with RawReceiver({"/a": sloppy_204}) as receiver:
        await service.subscribe(receiver.url_for("/a"))
        await subscribe_company_b(service, receiver.url_for("/b"))

        # When company A's event is delivered, then company B's, to the same host
        first = await service.publish()
        await service.wait_for_status(first, "SUCCEEDED", "RETRYING")
        second = await publish_for_company_b(service)
        await service.wait_until(
            lambda: _status_is(service, second, "SUCCEEDED", "RETRYING"), timeout=5
        )

        # Then both succeeded at their first attempt, each sent once
        delivered = await service.delivery(first)
        requests = receiver.requests
    assert (delivered["status"], delivered["attemptCount"]) == ("SUCCEEDED", 1)
    assert delivered["attempts"][0]["responseStatus"] == 204
    rows = await service.sql(
        "SELECT status, attempt_count FROM deliveries WHERE id = %(id)s", id=second
    )
    assert rows == [{"status": "SUCCEEDED", "attempt_count": 1}]
    assert [request.path for request in requests] == ["/a", "/b"]


async def _status_is(service: Service, delivery_id: str, *statuses: str) -> bool:
    rows = await service.sql("SELECT status FROM deliveries WHERE id = %(id)s", id=delivery_id)
    return bool(rows) and rows[0]["status"] in statuses


async def test_an_attempt_that_stalls_mid_body_shows_no_status(
    open_service: OpenService,
) -> None:
    # Given a receiver that answers "200 OK" and part of its body, then stalls
    def stall(connection: RawConnection, request: RawRequest) -> None:
        connection.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
        connection.next_request(timeout=3)

    service = await open_service(request_timeout_seconds=0.5)
    with RawReceiver({"/a": stall}) as receiver:
        await service.subscribe(receiver.url_for("/a"))

        # When an event is delivered to it
        delivery_id = await service.publish()

        # Then the attempt failed without a status, and the delivery's last status is none
        delivery = await service.wait_for_status(delivery_id, "RETRYING")
    [attempt] = delivery["attempts"]
    assert (attempt["responseStatus"], attempt["responseBody"], attempt["error"]) == (
        None,
        None,
        "timed out after 0.5 s reading the response body (status 200)",
    )
    rows = await service.sql(
        "SELECT last_response_status FROM deliveries WHERE id = %(id)s", id=delivery_id
    )
    assert rows == [{"last_response_status": None}]
