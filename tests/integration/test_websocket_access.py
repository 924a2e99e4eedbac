"""Websockets stay authorized while open: each operation is admitted like an HTTP request
(key verified again, a token spent), the key is re-checked periodically, sockets have a
maximum lifetime, and connection_init takes the authorization name in any case."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from app.core.settings import Settings
from app.domain import api_keys
from app.domain.api_keys import generate_key, prefix_of
from app.store.services import Services
from app.web.graphql_app import CONNECTION_INIT_TIMEOUT_SECONDS, MAX_OPERATIONS_PER_SOCKET
from tests.service import Tenants, make_settings
from tests.service import served as served_on_port

VIEWER = "query { viewer { role } }"
SUBSCRIBE = "subscription { deliveryUpdates { id status } }"


@asynccontextmanager
async def served(settings: Settings, services: Services) -> AsyncIterator[str]:
    """The real app on a real socket, served by uvicorn; yields its base URL (http://)."""
    async with served_on_port(settings, services) as port:
        yield f"http://127.0.0.1:{port}"


async def open_socket(base: str, payload: dict[str, Any]) -> Any:
    socket = await websockets.connect(
        base.replace("http://", "ws://") + "/graphql", subprotocols=["graphql-transport-ws"]
    )
    await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
    return socket


async def acknowledged(base: str, key: str) -> Any:
    socket = await open_socket(base, {"authorization": f"Bearer {key}"})
    ack = json.loads(await asyncio.wait_for(socket.recv(), 10))
    assert ack["type"] == "connection_ack", ack
    return socket


async def run(socket: Any, operation_id: str, query: str) -> dict[str, Any]:
    """Send one operation; its first result ("next") or its "error"."""
    await socket.send(
        json.dumps({"id": operation_id, "type": "subscribe", "payload": {"query": query}})
    )
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 10))
        if message.get("id") == operation_id and message["type"] in ("next", "error"):
            return message


async def close_of(socket: Any) -> tuple[int, str]:
    """The code and reason the server closes ``socket`` with (messages before are skipped)."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(socket.recv(), 30)
    rcvd = closed.value.rcvd
    assert rcvd is not None, "closed without a close frame from the server"
    return rcvd.code, rcvd.reason


def settings_with(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    return make_settings(database_url, tmp_path, **overrides)


async def test_an_operation_after_the_keys_revocation_closes_the_socket(
    database_url: str, tmp_path: Path, services: Services, tenants: Tenants
) -> None:
    # Given an open socket whose key is checked only once a minute
    settings = settings_with(database_url, tmp_path, ws_key_check_seconds=60.0)
    async with served(settings, services) as base:
        socket = await acknowledged(base, tenants.key_a)
        try:
            before = await run(socket, "1", VIEWER)
            # When the key is revoked and the socket sends another operation
            await api_keys.revoke_key(services.db, str(prefix_of(tenants.key_a)))
            await socket.send(
                json.dumps({"id": "2", "type": "subscribe", "payload": {"query": VIEWER}})
            )
            closed = await close_of(socket)
        finally:
            await socket.close()

    # Then the operation is not run: the socket is closed as revoked
    assert before["type"] == "next"
    assert before["payload"]["data"] == {"viewer": {"role": "COMPANY"}}
    assert closed == (4403, "API key revoked.")


async def test_a_socket_is_closed_at_the_end_of_its_lifetime(
    database_url: str, tmp_path: Path, services: Services, tenants: Tenants
) -> None:
    settings = settings_with(database_url, tmp_path, ws_max_lifetime_seconds=1.0)
    async with served(settings, services) as base:
        socket = await acknowledged(base, tenants.key_a)
        try:
            await socket.send(
                json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
            )
            closed = await close_of(socket)
        finally:
            await socket.close()

    assert closed == (1001, "Maximum connection lifetime reached; reconnect.")


async def test_websocket_operations_spend_the_keys_tokens(
    database_url: str, tmp_path: Path, services: Services, tenants: Tenants
) -> None:
    # Given a burst of 4 per key: the connection takes one
    settings = settings_with(database_url, tmp_path, rate_limit_per_second=0.01, rate_limit_burst=4)
    async with served(settings, services) as base:
        socket = await acknowledged(base, tenants.key_a)
        try:
            # When the socket sends four operations
            answers = [await run(socket, str(n), VIEWER) for n in range(4)]
            async with httpx.AsyncClient(base_url=base) as http:
                over_http = await http.post(
                    "/graphql",
                    json={"query": VIEWER},
                    headers={"authorization": f"Bearer {tenants.key_a}"},
                )
                other_key = await http.post(
                    "/graphql",
                    json={"query": VIEWER},
                    headers={"authorization": f"Bearer {tenants.key_b}"},
                )
        finally:
            await socket.close()

    # Then three ran and the fourth was refused, and so is the key over HTTP now
    assert [answer["type"] for answer in answers] == ["next", "next", "next", "error"]
    [error] = answers[-1]["payload"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert over_http.status_code == 429
    assert other_key.status_code == 200


@pytest.mark.parametrize("name", ["Authorization", "AUTHORIZATION", "authorization"])
async def test_connection_init_takes_authorization_in_any_case(
    server_base: str, tenants: Tenants, name: str
) -> None:
    socket = await open_socket(server_base, {name: f"Bearer {tenants.key_a}"})
    try:
        ack = json.loads(await asyncio.wait_for(socket.recv(), 10))
        answer = await run(socket, "1", VIEWER)
    finally:
        await socket.close()

    assert ack["type"] == "connection_ack"
    assert answer["payload"]["data"] == {"viewer": {"role": "COMPANY"}}


async def test_connection_init_with_two_authorizations_is_refused(
    server_base: str, tenants: Tenants
) -> None:
    socket = await open_socket(
        server_base,
        {"authorization": f"Bearer {tenants.key_a}", "Authorization": f"Bearer {tenants.key_b}"},
    )
    try:
        closed = await close_of(socket)
    finally:
        await socket.close()

    assert closed == (4400, "Send one authorization value, not several.")


async def test_forged_keys_over_websockets_spend_the_address_bucket(
    database_url: str, tmp_path: Path, services: Services, tenants: Tenants
) -> None:
    # Given 2 unauthenticated connections a burst per address
    settings = settings_with(
        database_url,
        tmp_path,
        rate_limit_unauthenticated_per_second=0.01,
        rate_limit_unauthenticated_burst=2,
    )
    async with served(settings, services) as base:
        refusals = []
        for _ in range(3):
            socket = await open_socket(base, {"authorization": f"Bearer {generate_key()[0]}"})
            try:
                refusals.append(await close_of(socket))
            finally:
                await socket.close()

    assert refusals[:2] == [(4403, "Missing or invalid API key.")] * 2
    assert refusals[2][0] == 1013
    assert refusals[2][1].startswith("Rate limit exceeded; retry after")


@pytest.fixture
async def server_base(settings: Settings, services: Services) -> AsyncIterator[str]:
    async with served(settings, services) as base:
        yield base


async def test_a_socket_whose_key_cannot_be_checked_is_closed_try_again_later(
    database_url: str, tmp_path: Path, services: Services, tenants: Tenants
) -> None:
    # Given an open socket whose key is checked twice a second
    settings = settings_with(database_url, tmp_path, ws_key_check_seconds=0.5)
    async with served(settings, services) as base:
        socket = await acknowledged(base, tenants.key_a)
        try:
            # When the database can no longer be reached (the pool is gone)
            await services.db.pool.close()
            closed = await close_of(socket)
        finally:
            await socket.close()

    # Then the socket is closed rather than left unchecked
    assert closed == (1013, "The service is temporarily unavailable; try again shortly.")


async def test_a_socket_that_never_sends_connection_init_is_closed_within_seconds(
    database_url: str, tmp_path: Path, services: Services
) -> None:
    # Given a socket opened with no connection_init (it has proven nothing, spent nothing)
    settings = settings_with(database_url, tmp_path)
    async with served(settings, services) as base:
        socket = await websockets.connect(
            base.replace("http://", "ws://") + "/graphql", subprotocols=["graphql-transport-ws"]
        )
        opened = time.monotonic()
        try:
            # When it stays silent, then the server closes it after the init timeout
            code, _ = await close_of(socket)
        finally:
            await socket.close()
        held = time.monotonic() - opened

    assert code == 4408  # graphql-transport-ws: connection initialisation timeout
    assert held < CONNECTION_INIT_TIMEOUT_SECONDS + 3


async def test_a_socket_holds_a_bounded_number_of_live_subscriptions(
    database_url: str, tmp_path: Path, services: Services, tenants: Tenants
) -> None:
    # Given a socket with as many live deliveryUpdates as a socket may hold
    settings = settings_with(database_url, tmp_path, rate_limit_per_second=0.0)
    async with served(settings, services) as base:
        socket = await acknowledged(base, tenants.key_a)
        try:
            for number in range(MAX_OPERATIONS_PER_SOCKET):
                await socket.send(
                    json.dumps(
                        {
                            "id": f"live-{number}",
                            "type": "subscribe",
                            "payload": {"query": SUBSCRIBE},
                        }
                    )
                )
            # When it asks for one more, then that one is refused with an error
            refused = await run(socket, "one-too-many", SUBSCRIBE)
        finally:
            await socket.close()

    assert refused["type"] == "error"
    assert refused["payload"][0]["message"] == "Subscription limit reached"
