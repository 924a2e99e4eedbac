"""deliveryUpdates over graphql-transport-ws: each company hears only its own deliveries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
import websockets

from app.events import NewEvent, publish_event
from app.server import build_app
from app.services import Services
from app.settings import Settings
from app.subscriptions import NewSubscription, create_subscription
from tests.service import Tenants
from tests.smtp import free_port

SUBSCRIBE = "subscription { deliveryUpdates { id status event { id subject } } }"


@pytest.fixture
async def server_url(settings: Settings, services: Services) -> AsyncIterator[str]:
    """The real app on a real socket (websockets need one), served by uvicorn."""
    port = free_port()
    config = uvicorn.Config(
        build_app(settings, services=services),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield f"ws://127.0.0.1:{port}/graphql"
    server.should_exit = True
    await task


async def connect(url: str, key: str) -> Any:
    socket = await websockets.connect(url, subprotocols=["graphql-transport-ws"])
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {key}"}})
    )
    ack = json.loads(await asyncio.wait_for(socket.recv(), 5))
    assert ack["type"] == "connection_ack", ack
    await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
    return socket


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
        await create_subscription(
            services, company, NewSubscription("ORDER_STATUS", "http://127.0.0.1:9/", "o@x.co")
        )
    socket_a = await connect(server_url, tenants.key_a)
    socket_b = await connect(server_url, tenants.key_b)
    try:
        await asyncio.sleep(0.3)  # both subscriptions are listening
        event_a = await publish_event(
            services, NewEvent(tenants.a, "ORDER_STATUS", {"n": 1}, subject="for-a")
        )
        event_b = await publish_event(
            services, NewEvent(tenants.b, "ORDER_STATUS", {"n": 2}, subject="for-b")
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
