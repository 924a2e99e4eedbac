"""``webhooks serve`` against hostile and mistaken requests: each gets a 4xx, and its
log stays quiet: no traceback, no ERROR, nothing of the documents it was sent.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.core.secret_box import generate_key
from tests.acceptance.processes import Process, Processes, seed_tenants, service_environment

INLINE_SECRET = "inline-SECRET-1212121212"
CREATE_INLINE = f"""
mutation {{
  createWebhookSubscription(input: {{
    webhook: "ORDER_STATUS" callbackUrl: "https://hooks.example.com/in"
    notificationEmail: "ops@example.com"
    apiKeyParams: [{{name: "api_key", value: "{INLINE_SECRET}"}}]
  }}) {{ subscription {{ id }} userErrors {{ field code message }} }}
}}
"""
MIB = 1024 * 1024


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path / "logs") as started:
        yield started


def post(server: Process, body: bytes, key: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    return httpx.post(server.url("/graphql"), content=body, headers=headers, timeout=10)


def trickle(server: Process, key: str) -> bytes:
    """A request whose body arrives a byte every 0.3 s; what the server answers."""
    port = int(server.url("").rsplit(":", 1)[1])
    body = json.dumps({"query": "query { viewer { role } }"}).encode()
    head = (
        "POST /graphql HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
        connection.sendall(head)
        connection.setblocking(False)
        for index in range(len(body)):
            try:
                answer = connection.recv(65536)
            except BlockingIOError:
                connection.sendall(body[index : index + 1])
                time.sleep(0.3)
                continue
            return answer
    raise AssertionError("the whole body was read: no deadline")


def test_a_served_api_refuses_hostile_requests_with_4xx_and_a_quiet_log(
    database_url: str, tmp_path: Path, processes: Processes
) -> None:
    tenants = seed_tenants(database_url)
    env = service_environment(
        database_url, tmp_path / "data", generate_key(), WEBHOOKS_BODY_TIMEOUT_SECONDS="1"
    )
    server = processes.serve(env)
    deep = b'{"query": "{ viewer { role } }", "variables": {"x": ' + b"[" * 990 + b"]" * 990
    huge = b'{"query": "{ viewer { role } }", "variables": {"x": ' + b"9" * 4301 + b"}}"

    # When it is sent deep JSON, a huge number, bare values, non-UTF-8, a subscription
    statuses = {
        "deep": post(server, deep + b"}}", tenants.key_a).status_code,
        "huge": post(server, huge, tenants.key_a).status_code,
        "bare": post(server, b"1", tenants.key_a).status_code,
        "utf-16": post(
            server, '{"query": "{ viewer { role } }"}'.encode("utf-16"), None
        ).status_code,
        "subscription": post(
            server, b'{"query": "subscription { deliveryUpdates { id } }"}', tenants.key_a
        ).status_code,
    }
    # and documents with an inline secret that fail: a typo, no key, the wrong role
    for document, key in [
        (CREATE_INLINE.replace("subscription { id }", "subscription { idd }"), tenants.key_a),
        (CREATE_INLINE, None),
        (CREATE_INLINE, tenants.publisher),
    ]:
        response = post(server, json.dumps({"query": document}).encode(), key)
        assert response.status_code == 200 and response.json()["errors"], response.text
    # and a body trickling in, and a websocket message over the body cap
    slow = trickle(server, tenants.key_a)
    with connect(
        server.url("/graphql").replace("http:", "ws:"),
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        max_size=None,
    ) as websocket:
        init = {"authorization": f"Bearer {tenants.key_a}"}
        websocket.send(json.dumps({"type": "connection_init", "payload": init}))
        assert json.loads(websocket.recv(timeout=10))["type"] == "connection_ack"
        websocket.send(json.dumps({"type": "ping", "payload": {"x": "a" * (2 * MIB)}}))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                websocket.recv(timeout=10)

    # Then each got a 4xx (the socket a 1009)
    assert statuses == {
        "deep": 400,
        "huge": 400,
        "bare": 400,
        "utf-16": 400,
        "subscription": 400,
    }, server.describe()
    assert slow.startswith(b"HTTP/1.1 408 "), slow
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    # and the log holds three one-line refusals, and no traceback, ERROR or secret
    log = server.log()
    assert "Traceback" not in log, server.describe()
    assert " ERROR " not in log, server.describe()
    assert INLINE_SECRET not in log, server.describe()
    refusals = [line for line in log.splitlines() if "GraphQL request refused" in line]
    assert len(refusals) == 3, server.describe()
