"""deliveryUpdates over graphql-transport-ws: each company hears only its own deliveries,
one update per change, each as the change left the delivery, with fresh nested data."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
import websockets

from app.core.settings import Settings
from app.domain.events import NewEvent
from app.domain.subscriptions import NewSubscription
from app.store.services import Services
from tests.delivery import OpenService
from tests.delivery import open_service_fixture as open_service_fixture
from tests.payloads import order_status_payload
from tests.receivers import Receiver, respond
from tests.service import Tenants, create_subscription_for, publish_event_with, served

SUBSCRIBE = "subscription { deliveryUpdates { id status event { id subject } } }"
# Everything nested that changes while a delivery is retried.
FOLLOW = """
subscription {
  deliveryUpdates {
    id status attemptCount lastResponseStatus completedAt
    attempts { cycle number responseStatus succeeded }
    subscription { id isActive }
    event { id deliveries { id status attemptCount } }
  }
}"""


@asynccontextmanager
async def serving(settings: Settings, services: Services) -> AsyncIterator[str]:
    """The real app on a real socket (websockets need one); yields its websocket URL."""
    async with served(settings, services) as port:
        yield f"ws://127.0.0.1:{port}/graphql"


@pytest.fixture
async def server_url(settings: Settings, services: Services) -> AsyncIterator[str]:
    async with serving(settings, services) as url:
        yield url


async def connect(url: str, key: str, document: str = SUBSCRIBE) -> Any:
    socket = await websockets.connect(url, subprotocols=["graphql-transport-ws"])
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {key}"}})
    )
    ack = json.loads(await asyncio.wait_for(socket.recv(), 5))
    assert ack["type"] == "connection_ack", ack
    await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": document}}))
    return socket


async def listening(services: Services, count: int = 1) -> None:
    """Until ``count`` live subscriptions are in place (bounded: only a hang fails)."""
    assert services.updates is not None
    deadline = time.monotonic() + 10
    while services.updates.subscriber_count < count:
        assert time.monotonic() < deadline, "the subscription never started listening"
        await asyncio.sleep(0.02)


async def updates_until(socket: Any, status: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The updates up to and including the first with ``status``."""
    updates: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not updates or updates[-1]["status"] != status:
        left = deadline - time.monotonic()
        assert left > 0, f"no {status} update; got {updates}"
        message = json.loads(await asyncio.wait_for(socket.recv(), left))
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        updates.append(message["payload"]["data"]["deliveryUpdates"])
    return updates


def shown(update: dict[str, Any]) -> tuple[Any, ...]:
    """An update's state and the attempts it shows."""
    return (
        update["status"],
        update["attemptCount"],
        [attempt["responseStatus"] for attempt in update["attempts"]],
    )


def read_again_for(update: dict[str, Any]) -> bool:
    """Whether the update's nested event was loaded for it: its deliveries (read when the
    update was made, so perhaps one change further) are not older than the update."""
    [same] = update["event"]["deliveries"]
    return bool(same["id"] == update["id"] and same["attemptCount"] >= update["attemptCount"])


async def received(socket: Any, seconds: float) -> list[dict[str, Any]]:
    """Every update that arrives within ``seconds``."""
    updates = []
    try:
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), seconds))
            assert message["type"] == "next", message
            updates.append(message["payload"]["data"]["deliveryUpdates"])
    except TimeoutError:
        return updates


async def test_each_company_receives_only_its_own_updates(
    server_url: str, services: Services, tenants: Tenants
) -> None:
    for company in (tenants.a, tenants.b):
        await create_subscription_for(
            services, company, NewSubscription("ORDER_STATUS", "http://127.0.0.1:9/", "o@x.co")
        )
    socket_a = await connect(server_url, tenants.key_a)
    socket_b = await connect(server_url, tenants.key_b)
    try:
        await asyncio.sleep(0.3)  # both subscriptions are listening
        event_a = await publish_event_with(
            services,
            NewEvent(tenants.a, "ORDER_STATUS", order_status_payload(n=1), subject="for-a"),
        )
        event_b = await publish_event_with(
            services,
            NewEvent(tenants.b, "ORDER_STATUS", order_status_payload(n=2), subject="for-b"),
        )
        updates_a = await received(socket_a, 1.5)
        updates_b = await received(socket_b, 0.5)
    finally:
        await socket_a.close()
        await socket_b.close()

    assert [u["event"]["id"] for u in updates_a] == [str(event_a.id)]
    assert [u["event"]["subject"] for u in updates_a] == ["for-a"]
    assert [u["event"]["id"] for u in updates_b] == [str(event_b.id)]
    assert updates_a[0]["status"] == "PENDING"


async def test_a_websocket_without_a_valid_key_is_rejected(server_url: str) -> None:
    socket = await websockets.connect(server_url, subprotocols=["graphql-transport-ws"])
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": "Bearer pwk_nope"}})
    )
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(socket.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_a_retried_delivery_is_told_change_by_change_with_fresh_attempts(
    open_service: OpenService,
) -> None:
    # Given the real worker, retrying after 0.3 s, and a receiver failing twice, then OK
    service = await open_service(retry_interval_seconds=0.3)
    with Receiver() as receiver:
        receiver.script("/hook", [respond(500), respond(503), respond(200)])
        await service.subscribe(receiver.url_for("/hook"))
        async with serving(service.settings, service.services) as url:
            socket = await connect(url, service.tenants.key_a, FOLLOW)
            try:
                await listening(service.services)

                # When an event is published and delivered at the third attempt
                delivery_id = await service.publish()
                updates = await updates_until(socket, "SUCCEEDED")
                # (and nothing is told after the success)
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(socket.recv(), 1.0)
            finally:
                await socket.close()

    # Then every change was told once, in order, each with the attempts made until then,
    # and the nested event read afresh for each update
    assert {update["id"] for update in updates} == {delivery_id}
    assert [shown(update) for update in updates] == [
        ("PENDING", 0, []),
        ("RETRYING", 1, [500]),
        ("RETRYING", 2, [500, 503]),
        ("SUCCEEDED", 3, [500, 503, 200]),
    ]
    assert all(read_again_for(update) for update in updates), updates
    assert [update["lastResponseStatus"] for update in updates] == [None, 500, 503, 200]
    assert updates[-1]["completedAt"] is not None
    assert [attempt["number"] for attempt in updates[-1]["attempts"]] == [1, 2, 3]


def advance_while_the_server_cannot_listen(database_url: str, delivery_id: str) -> None:
    """Two attempts recorded back to back, blocking the event loop: the API process hears
    of the first change only when the row already shows the second."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        for number, status, response in ((1, "RETRYING", 500), (2, "SUCCEEDED", 200)):
            with connection.transaction():
                connection.execute(
                    "INSERT INTO delivery_attempts (delivery_id, cycle, number, company_id,"
                    " started_at, duration_ms, response_status, succeeded)"
                    " SELECT id, 1, %s, company_id, now(), 1, %s, %s FROM deliveries"
                    " WHERE id = %s",
                    (number, response, status == "SUCCEEDED", delivery_id),
                )
                connection.execute(
                    "UPDATE deliveries SET status = %s, attempt_count = %s,"
                    " last_response_status = %s, last_attempt_at = now() WHERE id = %s",
                    (status, number, response, delivery_id),
                )


async def test_changes_heard_late_are_still_told_as_they_happened(
    settings: Settings, server_url: str, services: Services, tenants: Tenants
) -> None:
    # Given a company following its deliveries, and one delivery told as PENDING
    await create_subscription_for(
        services, tenants.a, NewSubscription("ORDER_STATUS", "http://127.0.0.1:9/", "o@x.co")
    )
    socket = await connect(server_url, tenants.key_a, FOLLOW)
    try:
        await listening(services)
        event = await publish_event_with(
            services, NewEvent(tenants.a, "ORDER_STATUS", order_status_payload(n=1))
        )
        [pending] = await updates_until(socket, "PENDING")

        # When it fails once and then succeeds before the API process hears of either
        assert settings.database_url is not None
        advance_while_the_server_cannot_listen(settings.database_url, pending["id"])
        later = await updates_until(socket, "SUCCEEDED")
    finally:
        await socket.close()

    # Then the failure is told as a failure, and the success once, each with its attempts
    assert pending["event"]["id"] == str(event.id)
    assert [(u["status"], u["attemptCount"], len(u["attempts"])) for u in [pending, *later]] == [
        ("PENDING", 0, 0),
        ("RETRYING", 1, 1),
        ("SUCCEEDED", 2, 2),
    ]


async def test_a_publisher_key_cannot_follow_deliveries_live(
    server_url: str, services: Services, tenants: Tenants
) -> None:
    # When the order system's key asks for live updates
    socket = await connect(server_url, tenants.publisher)
    try:
        message = json.loads(await asyncio.wait_for(socket.recv(), 5))
    finally:
        await socket.close()

    # Then it is refused, FORBIDDEN, and listens to nothing
    assert message["type"] == "next", message
    [error] = message["payload"]["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert "COMPANY key" in error["message"]
    assert services.updates is not None and services.updates.subscriber_count == 0
