"""``webhooks serve`` as a real process: whose address the rate limits see, and what
``webhooks key revoke`` does to a websocket that is already open."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from app.core.secret_box import generate_key
from app.domain.api_keys import prefix_of
from tests.acceptance.processes import (
    Api,
    Processes,
    run_cli,
    seed_tenants,
    service_environment,
)

VIEWER = "query { viewer { role } }"
SUBSCRIBE = "subscription { deliveryUpdates { id status } }"
KEY_CHECK_SECONDS = 0.5


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path / "logs") as started:
        yield started


def keyless_statuses(base_url: str, forwarded_for: list[str]) -> list[int]:
    """Status of one keyless request per X-Forwarded-For value, in order."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        return [
            client.post(
                "/graphql", json={"query": VIEWER}, headers={"x-forwarded-for": address}
            ).status_code
            for address in forwarded_for
        ]


def test_a_spoofed_x_forwarded_for_gets_no_fresh_bucket(
    database_url: str, tmp_path: Path, processes: Processes
) -> None:
    # Given the server reached directly (no proxy configured), 3 unauthenticated calls a burst
    env = service_environment(
        database_url,
        tmp_path / "data",
        generate_key(),
        WEBHOOKS_RATE_LIMIT_UNAUTHENTICATED_PER_SECOND="0.01",
        WEBHOOKS_RATE_LIMIT_UNAUTHENTICATED_BURST="3",
    )
    api = processes.serve(env)

    # When every request claims another forwarded address
    statuses = keyless_statuses(api.url(""), [f"203.0.113.{n}" for n in range(1, 6)])

    # Then they all count against the one real address
    assert statuses == [200, 200, 200, 429, 429], api.describe()


def test_x_forwarded_for_counts_when_a_configured_proxy_sends_it(
    database_url: str, tmp_path: Path, processes: Processes
) -> None:
    # Given 127.0.0.1 configured as the proxy
    env = service_environment(
        database_url,
        tmp_path / "data",
        generate_key(),
        WEBHOOKS_RATE_LIMIT_UNAUTHENTICATED_PER_SECOND="0.01",
        WEBHOOKS_RATE_LIMIT_UNAUTHENTICATED_BURST="3",
        WEBHOOKS_TRUSTED_PROXIES="127.0.0.1",
    )
    api = processes.serve(env)

    # When five clients behind it call, then one of them three times more
    distinct = keyless_statuses(api.url(""), [f"203.0.113.{n}" for n in range(1, 6)])
    repeated = keyless_statuses(api.url(""), ["203.0.113.1"] * 3)

    # Then each forwarded address has its own bucket
    assert distinct == [200] * 5, api.describe()
    assert repeated == [200, 200, 429], api.describe()


async def open_subscription(url: str, key: str) -> websockets.ClientConnection:
    socket = await websockets.connect(url, subprotocols=["graphql-transport-ws"])
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}})
    )
    ack = json.loads(await asyncio.wait_for(socket.recv(), 10))
    assert ack["type"] == "connection_ack", ack
    await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
    return socket


def test_key_revoke_closes_the_keys_open_websocket(
    database_url: str, tmp_path: Path, processes: Processes
) -> None:
    # Given two companies' subscriptions open on `webhooks serve`
    tenants = seed_tenants(database_url)
    env = service_environment(
        database_url,
        tmp_path / "data",
        generate_key(),
        WEBHOOKS_WS_KEY_CHECK_SECONDS=str(KEY_CHECK_SECONDS),
    )
    api = processes.serve(env)
    url = api.url("/graphql").replace("http://", "ws://")

    async def scenario() -> tuple[int | None, str | None, float, bool]:
        revoked_socket = await open_subscription(url, tenants.key_a)
        other_socket = await open_subscription(url, tenants.key_b)
        try:
            # When company A's key is revoked with the CLI
            revoked = await asyncio.to_thread(
                run_cli, "key", "revoke", str(prefix_of(tenants.key_a)), "--json", env=env
            )
            assert revoked.json()["revokedAt"], revoked.describe()
            started = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(revoked_socket.recv(), 30)
            waited = time.monotonic() - started
            # (the other socket is still served: a ping is answered)
            await other_socket.send(json.dumps({"type": "ping"}))
            pong = json.loads(await asyncio.wait_for(other_socket.recv(), 10))
        finally:
            await revoked_socket.close()
            await other_socket.close()
        rcvd = closed.value.rcvd
        return (
            rcvd.code if rcvd else None,
            rcvd.reason if rcvd else None,
            waited,
            pong["type"] == "pong",
        )

    code, reason, waited, other_alive = asyncio.run(scenario())

    # Then A's socket is closed as revoked, within a few key checks; B's lives on
    assert (code, reason) == (4403, "API key revoked."), api.describe()
    assert waited < 20 * KEY_CHECK_SECONDS, waited
    assert other_alive


CREATE_PORTAL_LINK = "mutation { createPortalLink { link { url } userErrors { message } } }"


def test_a_portal_link_is_built_on_the_port_served_and_opens(
    database_url: str, tmp_path: Path, processes: Processes
) -> None:
    # Given `webhooks serve --port N` with no WEBHOOKS_PUBLIC_URL (development)
    tenants = seed_tenants(database_url)
    api = processes.serve(service_environment(database_url, tmp_path / "data", generate_key()))

    # When a COMPANY key mints a portal link
    with Api(api.url("")) as client:
        url = client.data(CREATE_PORTAL_LINK, key=tenants.key_a)["createPortalLink"]["link"]["url"]

    # Then it names the address served (not WEBHOOKS_PORT's default), and it opens there
    assert url.startswith(api.url("/portal/open?token=")), (url, api.url(""))
    opened = httpx.get(url, follow_redirects=False, timeout=10)
    assert (opened.status_code, opened.headers["location"]) == (303, "/portal/")
