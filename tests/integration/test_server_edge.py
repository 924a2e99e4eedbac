"""The API served by uvicorn as ``webhooks serve`` configures it, on a real socket:
websocket messages bounded like request bodies, only the graphql-transport-ws protocol,
and a deadline for a request body that trickles in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import websockets

from app.core.settings import Settings
from app.store.services import Services
from app.web.refusals import body_cap
from app.web.request_json import MAX_DEPTH
from tests.service import Tenants, make_settings, served

BODY_TIMEOUT_SECONDS = 1.0
VIEWER = json.dumps({"query": "query { viewer { role } }"}).encode()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path, body_timeout_seconds=BODY_TIMEOUT_SECONDS)


@pytest.fixture
async def port(settings: Settings, services: Services) -> AsyncIterator[int]:
    """The port of the app served by uvicorn with the configuration of ``webhooks serve``."""
    async with served(settings, services) as chosen:
        yield chosen


async def connect(port: int, key: str) -> websockets.ClientConnection:
    socket = await websockets.connect(
        f"ws://127.0.0.1:{port}/graphql",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        max_size=None,
    )
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {key}"}})
    )
    ack = json.loads(await asyncio.wait_for(socket.recv(), 10))
    assert ack["type"] == "connection_ack", ack
    return socket


# -- websockets -------------------------------------------------------------------------


async def test_a_websocket_message_up_to_the_body_cap_is_read(
    port: int, settings: Settings, tenants: Tenants
) -> None:
    socket = await connect(port, tenants.key_a)
    try:
        filler = "a" * (body_cap(settings) - 100)

        await socket.send(json.dumps({"type": "ping", "payload": {"filler": filler}}))

        pong = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert pong["type"] == "pong"
    finally:
        await socket.close()


async def test_a_websocket_message_over_the_body_cap_closes_the_socket(
    port: int, settings: Settings, tenants: Tenants
) -> None:
    socket = await connect(port, tenants.key_a)
    filler = "a" * body_cap(settings)

    # When a message larger than a request body may be is sent
    await socket.send(json.dumps({"type": "ping", "payload": {"filler": filler}}))

    # Then the server closes the socket: 1009, message too big
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(socket.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 5000])
async def test_a_websocket_message_nested_too_deeply_closes_the_socket_with_4400(
    port: int, tenants: Tenants, levels: int
) -> None:
    socket = await connect(port, tenants.key_a)
    message = '{"type": "ping", "payload": {"x": ' + "[" * levels + "]" * levels + "}}"

    await socket.send(message)

    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(socket.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4400


async def test_the_legacy_graphql_ws_protocol_is_refused(port: int) -> None:
    socket = await websockets.connect(
        f"ws://127.0.0.1:{port}/graphql", subprotocols=[websockets.Subprotocol("graphql-ws")]
    )

    # The handshake names no subprotocol, and the socket is closed at once
    assert socket.subprotocol is None
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(socket.recv(), 10)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
        4406,
        "Subprotocol not acceptable",
    )


# -- request bodies ----------------------------------------------------------------------


def request_head(length: int, key: str) -> bytes:
    return (
        "POST /graphql HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {key}\r\ncontent-length: {length}\r\n\r\n"
    ).encode()


async def test_a_body_trickling_in_is_cut_off_at_the_deadline_with_408(
    port: int, tenants: Tenants
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = VIEWER

    async def trickle() -> None:
        writer.write(request_head(len(body), tenants.key_a))
        for index in range(len(body)):
            writer.write(body[index : index + 1])
            await writer.drain()
            await asyncio.sleep(0.2)

    # Given a client sending its body a byte every 0.2 s (the body takes 7 s or more)
    started = time.monotonic()
    sending = asyncio.create_task(trickle())
    try:
        # Then the server answers 408 once the deadline has passed
        answer = await asyncio.wait_for(reader.read(65536), 20)
        elapsed = time.monotonic() - started
        sending.cancel()
        # and hangs up
        with contextlib.suppress(ConnectionResetError):
            while more := await asyncio.wait_for(reader.read(65536), 20):
                answer += more
    finally:
        sending.cancel()
        writer.close()

    assert answer.startswith(b"HTTP/1.1 408 "), answer
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    [error] = json.loads(payload)["errors"]
    assert error["extensions"] == {"code": "REQUEST_TIMEOUT"}
    assert BODY_TIMEOUT_SECONDS <= elapsed < len(body) * 0.2


async def test_a_body_sent_in_pieces_within_the_deadline_is_answered(
    port: int, tenants: Tenants
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request_head(len(VIEWER), tenants.key_a))
        for piece in (VIEWER[:10], VIEWER[10:20], VIEWER[20:]):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.1)

        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
    finally:
        writer.close()

    assert head.startswith(b"HTTP/1.1 200 "), head
