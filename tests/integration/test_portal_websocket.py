"""A portal session on the GraphQL websocket: accepted with its cookie only from the
service's own origin and with the CSRF token in connection_init, and closed when the
session ends (its minting key revoked) within the key-check interval."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import websockets

from app.core.portal_tokens import csrf_token
from app.core.settings import Settings
from app.domain import api_keys
from app.store.services import Services
from app.web.portal_access import DEVELOPMENT_COOKIE
from tests.integration.test_websocket_access import close_of
from tests.service import Tenants, make_settings, served
from tests.smtp import free_port

SESSION = "query { portalSession { access company { id } } }"
CREATE_LINK = """
mutation($access: PortalAccess!) {
  createPortalLink(input: {access: $access}) { link { url } userErrors { code } }
}"""


@asynccontextmanager
async def portal_server(
    database_url: str, tmp_path: Path, services: Services, **overrides: Any
) -> AsyncIterator[Settings]:
    """The real app on a real port whose own origin (public_origin) is that port."""
    port = free_port()
    settings = make_settings(database_url, tmp_path, port=port, **overrides)
    async with served(settings, services, port=port):
        yield settings


async def open_session(settings: Settings, key: str, access: str = "FULL") -> str:
    """Mint a link with ``key`` and open it over HTTP; the session id (the cookie)."""
    base = str(settings.public_origin)
    async with httpx.AsyncClient(base_url=base) as http:
        minted = await http.post(
            "/graphql",
            json={"query": CREATE_LINK, "variables": {"access": access}},
            headers={"authorization": f"Bearer {key}"},
        )
        url = minted.json()["data"]["createPortalLink"]["link"]["url"]
        parts = urlsplit(url)
        opened = await http.get(f"{parts.path}?{parts.query}")
        assert opened.status_code == 303
        return opened.cookies[DEVELOPMENT_COOKIE]


async def connect(
    settings: Settings, session_id: str, *, origin: str | None, payload: dict[str, Any]
) -> Any:
    base = str(settings.public_origin)
    socket = await websockets.connect(
        base.replace("http://", "ws://") + "/graphql",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        additional_headers={"cookie": f"{DEVELOPMENT_COOKIE}={session_id}"},
        origin=websockets.Origin(origin) if origin else None,
    )
    await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
    return socket


async def first_message(socket: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 10))
    return message


async def connected(settings: Settings, key: str, access: str = "FULL") -> Any:
    """A socket of a fresh session of ``key``'s company, from the portal's own page,
    acknowledged."""
    session_id = await open_session(settings, key, access)
    socket = await connect(
        settings,
        session_id,
        origin=settings.public_origin,
        payload={"csrfToken": csrf_token(session_id)},
    )
    assert (await first_message(socket))["type"] == "connection_ack"
    return socket


async def subscribe(socket: Any, query: str) -> None:
    await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))


async def test_the_portal_page_origin_with_the_csrf_token_connects_as_the_company(
    database_url: str, tmp_path: Path, services: Services, tenants: Tenants
) -> None:
    async with portal_server(database_url, tmp_path, services) as settings:
        socket = await connected(settings, tenants.key_a)
        try:
            await subscribe(socket, SESSION)
            result = await first_message(socket)
        finally:
            await socket.close()

    assert result["payload"]["data"] == {
        "portalSession": {"access": "FULL", "company": {"id": tenants.a}}
    }


@pytest.mark.parametrize(
    ("origin", "payload"),
    [
        (None, "page"),  # no Origin: not the portal's page
        ("http://evil.example", "page"),
        ("own", {}),  # no CSRF token
        ("own", {"csrfToken": "A" * 43}),
        ("own", {"csrfToken": 42}),
    ],
)
async def test_the_cookie_alone_or_from_another_origin_is_refused(
    database_url: str,
    tmp_path: Path,
    services: Services,
    tenants: Tenants,
    origin: str | None,
    payload: Any,
) -> None:
    async with portal_server(database_url, tmp_path, services) as settings:
        session_id = await open_session(settings, tenants.key_a)
        if payload == "page":
            payload = {"csrfToken": csrf_token(session_id)}
        # A foreign origin would be refused at the handshake by Strawberry already unless
        # the Host matched; the same host with another Origin reaches our check.
        try:
            socket = await connect(
                settings,
                session_id,
                origin=settings.public_origin if origin == "own" else origin,
                payload=payload,
            )
        except websockets.InvalidStatus as refused:
            assert refused.response.status_code == 403
            return
        try:
            code, _ = await close_of(socket)
        finally:
            await socket.close()

    assert code == 4403


@pytest.mark.parametrize("ending", ["the minting key is revoked", "the session expires"])
async def test_a_listening_sessions_socket_closes_when_the_session_ends(
    database_url: str, tmp_path: Path, services: Services, tenants: Tenants, ending: str
) -> None:
    # Given a session's socket listening to live updates, its session re-checked often
    lifetime = 1 if ending == "the session expires" else 3600
    async with portal_server(
        database_url, tmp_path, services, ws_key_check_seconds=0.2, portal_session_seconds=lifetime
    ) as settings:
        socket = await connected(settings, tenants.key_a)
        try:
            await subscribe(socket, "subscription { deliveryUpdates { id } }")
            # When the session ends
            if ending == "the minting key is revoked":
                await api_keys.revoke_key(services.db, str(api_keys.prefix_of(tenants.key_a)))
            closed = await close_of(socket)
        finally:
            await socket.close()

    # Then the socket is closed, saying why
    assert closed == (4403, "Portal session ended.")


async def test_a_read_only_sessions_socket_runs_no_mutation(
    database_url: str, tmp_path: Path, services: Services, tenants: Tenants
) -> None:
    async with portal_server(database_url, tmp_path, services) as settings:
        socket = await connected(settings, tenants.key_a, access="READ_ONLY")
        try:
            await subscribe(
                socket,
                'mutation { createWebhookSubscription(input: {webhook: "ORDER_STATUS", '
                'callbackUrl: "http://127.0.0.1:9/x", notificationEmail: "o@example.com"}) '
                "{ subscription { id } } }",
            )
            result = await first_message(socket)
        finally:
            await socket.close()

    errors = result["payload"] if result["type"] == "error" else result["payload"]["errors"]
    assert [error["extensions"]["code"] for error in errors] == ["FORBIDDEN"]
    async with services.db.transaction() as tx:
        cursor = await tx.connection.execute("SELECT count(*) FROM subscriptions")
        assert await cursor.fetchone() == (0,)
