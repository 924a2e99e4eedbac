"""The transport against real receivers on 127.0.0.1: outcomes, limits and pinning."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from ipaddress import ip_address, ip_network

import pytest

from app.core.signing import generate_secret, webhook_headers
from app.core.target_policy import IPAddress, Network, ResolutionError
from app.delivery.transport import AttemptOutcome, Transport
from tests.receivers import (
    Receiver,
    Reply,
    close_mid_response,
    close_without_response,
    hang,
    huge_body,
    redirect,
    reset_connection,
    respond,
    tls_contexts,
    unused_port,
)

LOOPBACK_OPEN: tuple[Network, ...] = (ip_network("127.0.0.0/8"),)
BODY = b'{"id": "evt_1", "webhook": "ORDER_STATUS", "data": {}}'
HEADERS = {"content-type": "application/json", "webhook-id": "dlv_1"}


class FakeResolver:
    """Answers from a table; each call takes the next answer (the last one repeats)."""

    def __init__(self, answers: Mapping[str, Sequence[Sequence[str]]], delay: float = 0.0) -> None:
        self._answers = answers
        self._delay = delay
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        await asyncio.sleep(self._delay)
        if host not in self._answers:
            raise ResolutionError(host)
        answers = self._answers[host]
        answer = answers[min(self.calls.count(host), len(answers)) - 1]
        return [ip_address(text) for text in answer]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    async with Transport(timeout_seconds=5, allowed_networks=LOOPBACK_OPEN) as sender:
        yield sender


OUTCOMES: dict[str, tuple[Reply, bool, str | None]] = {
    "200": (respond(200, "thanks"), True, None),
    "201": (respond(201), True, None),
    "202": (respond(202), True, None),
    "204": (respond(204, b""), True, None),
    "301": (redirect("/moved-here"), False, "redirect (301) not followed"),
    "302": (redirect("/moved-here", status=302), False, "redirect (302) not followed"),
    "307": (redirect("/moved-here", status=307), False, "redirect (307) not followed"),
    "400": (respond(400, "bad"), False, "HTTP 400"),
    "404": (respond(404), False, "HTTP 404"),
    "410": (respond(410), False, "HTTP 410"),
    "500": (respond(500, "boom"), False, "HTTP 500"),
    "503": (respond(503), False, "HTTP 503"),
}


@pytest.mark.parametrize(("reply", "succeeded", "error"), OUTCOMES.values(), ids=OUTCOMES.keys())
async def test_status_outcomes(
    receiver: Receiver, transport: Transport, reply: Reply, succeeded: bool, error: str | None
) -> None:
    receiver.script("/hook", reply)

    outcome = await transport.send(receiver.url_for("/hook"), BODY, HEADERS)

    assert (outcome.succeeded, outcome.status, outcome.error) == (succeeded, reply.status, error)
    assert outcome.body_excerpt == reply.body.decode()
    assert 0 <= outcome.duration_ms < 5000
    [request] = receiver.requests
    assert (request.method, request.path, request.body) == ("POST", "/hook", BODY)
    assert request.header("webhook-id") == "dlv_1"
    # Redirects are never followed: the target sees nothing.
    assert receiver.requests_to("/moved-here") == []


FAILURES: dict[str, tuple[Reply, int | None, str]] = {
    "closed-before-response": (
        close_without_response(),
        None,
        "connection closed before a full response",
    ),
    "reset": (reset_connection(), None, "connection reset"),
    # The status line arrived, the rest did not: no status is recorded.
    "closed-mid-response": (
        close_mid_response(promised=5000),
        None,
        "connection closed before a full response (status 200)",
    ),
}


@pytest.mark.parametrize(("reply", "status", "error"), FAILURES.values(), ids=FAILURES.keys())
async def test_connection_failures(
    receiver: Receiver, transport: Transport, reply: Reply, status: int | None, error: str
) -> None:
    receiver.script("/hook", reply)

    outcome = await transport.send(receiver.url_for("/hook"), BODY, HEADERS)

    assert (outcome.succeeded, outcome.status, outcome.error) == (False, status, error)
    assert len(receiver.requests) == 1


async def test_timeout_bounds_the_attempt(receiver: Receiver) -> None:
    receiver.script("/slow", hang())

    async with Transport(timeout_seconds=0.5, allowed_networks=LOOPBACK_OPEN) as transport:
        outcome = await transport.send(receiver.url_for("/slow"), BODY, HEADERS)

    assert (outcome.succeeded, outcome.status, outcome.error) == (
        False,
        None,
        "timed out after 0.5 s",
    )
    assert 450 <= outcome.duration_ms < 2500
    assert len(receiver.requests) == 1


async def test_timeout_covers_dns_and_response_together(receiver: Receiver) -> None:
    # Each phase alone fits in 0.5 s; together they do not.
    receiver.script("/hook", respond(200, delay=0.35))
    resolver = FakeResolver({"receiver.test": [["127.0.0.1"]]}, delay=0.3)

    async with Transport(
        timeout_seconds=0.5, allowed_networks=LOOPBACK_OPEN, resolver=resolver
    ) as transport:
        outcome = await transport.send(
            receiver.url_for("/hook", host="receiver.test"), BODY, HEADERS
        )

    # Per-phase timeouts alone would let this succeed after ~0.65 s.
    assert outcome.error == "timed out after 0.5 s"
    assert outcome.duration_ms < 2500


async def test_refused_connection(transport: Transport) -> None:
    outcome = await transport.send(f"http://127.0.0.1:{unused_port()}/hook", BODY, HEADERS)

    assert (outcome.succeeded, outcome.status, outcome.error) == (
        False,
        None,
        "connection refused",
    )
    assert outcome.body_excerpt is None


async def test_huge_body_is_not_downloaded(receiver: Receiver, transport: Transport) -> None:
    receiver.script("/hook", huge_body(50 * 1024 * 1024))

    outcome = await transport.send(receiver.url_for("/hook"), BODY, HEADERS)

    assert outcome.succeeded
    assert outcome.body_excerpt is not None
    assert 0 < len(outcome.body_excerpt.encode()) <= 4096
    assert outcome.duration_ms < 3000
    # The client hung up early: only what fits in socket buffers ever left the receiver.
    [sent] = await asyncio.to_thread(receiver.wait_for_streamed)
    assert sent < 20 * 1024 * 1024


async def test_loopback_is_blocked_unless_allowed(receiver: Receiver) -> None:
    async with Transport(timeout_seconds=5) as transport:
        outcome = await transport.send(receiver.url_for("/hook?api_key=SECRET"), BODY, HEADERS)

    assert outcome == AttemptOutcome(
        succeeded=False,
        status=None,
        body_excerpt=None,
        error="blocked: 127.0.0.1 is a loopback address",
        duration_ms=outcome.duration_ms,
        started_at=outcome.started_at,
    )
    assert receiver.requests == []


async def test_request_goes_to_the_pinned_address_with_the_host_header(
    receiver: Receiver,
) -> None:
    resolver = FakeResolver({"receiver.test": [["127.0.0.1"]], "elsewhere.test": [["127.0.0.2"]]})

    async with Transport(
        timeout_seconds=5, allowed_networks=LOOPBACK_OPEN, resolver=resolver
    ) as transport:
        reached = await transport.send(receiver.url_for("/hook", host="receiver.test"), BODY, {})
        # The receiver listens on 127.0.0.1 only: the pinned 127.0.0.2 must be refused.
        missed = await transport.send(receiver.url_for("/hook", host="elsewhere.test"), BODY, {})

    assert reached.succeeded
    assert missed.error == "connection refused"
    [request] = receiver.requests
    assert request.header("host") == f"receiver.test:{receiver.port}"
    assert resolver.calls == ["receiver.test", "elsewhere.test"]


async def test_concurrent_attempts_keep_their_own_pins(receiver: Receiver) -> None:
    receiver.script("/hook", respond(200, delay=0.05))
    resolver = FakeResolver({"receiver.test": [["127.0.0.1"]], "elsewhere.test": [["127.0.0.2"]]})
    hosts = ["receiver.test", "elsewhere.test"] * 15

    async with Transport(
        timeout_seconds=5, allowed_networks=LOOPBACK_OPEN, resolver=resolver, max_connections=20
    ) as transport:
        outcomes = await asyncio.gather(
            *(transport.send(receiver.url_for("/hook", host=host), BODY, {}) for host in hosts)
        )

    errors = [outcome.error for outcome in outcomes]
    assert errors == [None, "connection refused"] * 15
    assert {r.header("host") for r in receiver.requests} == {f"receiver.test:{receiver.port}"}
    assert len(receiver.requests) == 15


async def test_dns_rebinding_is_caught_on_every_attempt(receiver: Receiver) -> None:
    resolver = FakeResolver({"rebind.test": [["127.0.0.1"], ["10.0.0.1"]]})
    url = receiver.url_for("/hook", host="rebind.test")

    async with Transport(
        timeout_seconds=5, allowed_networks=LOOPBACK_OPEN, resolver=resolver
    ) as transport:
        first = await transport.send(url, BODY, HEADERS)
        second = await transport.send(url, BODY, HEADERS)

    assert first.succeeded
    assert second.error == "blocked: rebind.test resolves to a private address (10.0.0.1)"
    assert resolver.calls == ["rebind.test", "rebind.test"]
    assert len(receiver.requests) == 1


async def test_dns_failure() -> None:
    async with Transport(timeout_seconds=5, resolver=FakeResolver({})) as transport:
        outcome = await transport.send("http://nowhere.test/hook", BODY, HEADERS)

    assert (outcome.succeeded, outcome.error) == (False, "DNS lookup failed for nowhere.test")


async def test_query_reaches_the_receiver_but_not_the_error(
    receiver: Receiver, transport: Transport
) -> None:
    receiver.script("/hook", respond(500))

    outcome = await transport.send(
        receiver.url_for("/hook?existing=1&api_key=TOPSECRET"), BODY, HEADERS
    )
    refused = await transport.send(
        f"http://127.0.0.1:{unused_port()}/hook?api_key=TOPSECRET", BODY, HEADERS
    )

    [request] = receiver.requests
    assert request.params == {"existing": ["1"], "api_key": ["TOPSECRET"]}
    assert outcome.error == "HTTP 500"
    assert "TOPSECRET" not in f"{outcome}{refused}"


async def test_invalid_url_is_an_outcome_not_an_exception(transport: Transport) -> None:
    outcome = await transport.send("http://user@example.com/?api_key=TOPSECRET", BODY, HEADERS)

    assert not outcome.succeeded
    assert outcome.error is not None
    assert "user name or password" in outcome.error
    assert "TOPSECRET" not in outcome.error


async def test_connections_are_kept_alive(receiver: Receiver, transport: Transport) -> None:
    for _ in range(3):
        assert (await transport.send(receiver.url_for("/hook"), BODY, HEADERS)).succeeded

    assert len({request.client_port for request in receiver.requests}) == 1


async def test_cookies_a_receiver_sets_are_never_sent_back(receiver: Receiver) -> None:
    """Two companies' endpoints on one host must not share state through cookies."""
    receiver.script("/company-a", respond(200, headers={"Set-Cookie": "session=company-a; Path=/"}))
    resolver = FakeResolver({"receiver.test": [["127.0.0.1"]]})

    async with Transport(
        timeout_seconds=5, allowed_networks=LOOPBACK_OPEN, resolver=resolver
    ) as transport:
        for path in ("/company-a", "/company-b", "/company-a"):
            await transport.send(receiver.url_for(path, host="receiver.test"), BODY, HEADERS)

    assert [request.header("cookie") for request in receiver.requests] == [None, None, None]


async def test_signed_delivery_verifies_at_a_standard_receiver(transport: Transport) -> None:
    old, new = generate_secret(), generate_secret()
    headers = webhook_headers([new, old], "dlv_42", int(time.time()), BODY, attempt=2)

    with Receiver(secret=old) as holds_old, Receiver(secret=generate_secret()) as stranger:
        for receiver in (holds_old, stranger):
            await transport.send(receiver.url_for("/hook"), BODY, headers)
        [accepted] = holds_old.requests
        [rejected] = stranger.requests

    assert (accepted.verified, accepted.header("webhook-attempt")) == (True, "2")
    assert str(accepted.header("user-agent")).startswith("PlanOmatic-Webhooks/")
    assert rejected.verified is False
    assert rejected.verification_error is not None


async def test_scripted_sequence_then_success(receiver: Receiver, transport: Transport) -> None:
    receiver.script("/hook", [respond(500), respond(503), respond(200)])

    outcomes = [await transport.send(receiver.url_for("/hook"), BODY, HEADERS) for _ in range(4)]

    assert [outcome.error for outcome in outcomes] == ["HTTP 500", "HTTP 503", None, None]
    assert len(await receiver.wait_for_async(4, path="/hook")) == 4


async def test_an_unexpected_error_is_an_outcome_too(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenResolver:
        async def resolve(self, host: str, port: int) -> list[IPAddress]:
            raise RuntimeError("resolver bug")

    async with Transport(timeout_seconds=5, resolver=BrokenResolver()) as transport:
        outcome = await transport.send("https://example.test/hook", BODY, HEADERS)

    assert (outcome.succeeded, outcome.error) == (False, "unexpected error (RuntimeError)")
    assert "unexpected error while sending" in caplog.text


# --- TLS: the connection goes to the pinned IP, the certificate is checked for the name


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    contexts = tls_contexts(["receiver.test"])
    return contexts.server, contexts.client


@pytest.fixture
def tls_receiver(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> Iterator[tuple[Receiver, list[str]]]:
    server, _client = tls
    names: list[str] = []

    def record_sni(_sock: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        names.append(str(name))

    server.sni_callback = record_sni
    with Receiver(tls=server) as running:
        yield running, names
    server.sni_callback = None


def tls_transport(client: ssl.SSLContext | None) -> Transport:
    resolver = FakeResolver({"receiver.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]]})
    return Transport(
        timeout_seconds=5, allowed_networks=LOOPBACK_OPEN, resolver=resolver, ssl_context=client
    )


async def test_tls_uses_the_host_name_for_sni_and_verification(
    tls: tuple[ssl.SSLContext, ssl.SSLContext], tls_receiver: tuple[Receiver, list[str]]
) -> None:
    receiver, sni_names = tls_receiver

    async with tls_transport(tls[1]) as transport:
        outcome = await transport.send(
            receiver.url_for("/hook", host="receiver.test"), BODY, HEADERS
        )

    assert outcome.succeeded, outcome.error
    assert sni_names == ["receiver.test"]
    assert receiver.requests[0].header("host") == f"receiver.test:{receiver.port}"


async def test_tls_refuses_a_certificate_for_another_name(
    tls: tuple[ssl.SSLContext, ssl.SSLContext], tls_receiver: tuple[Receiver, list[str]]
) -> None:
    receiver, _names = tls_receiver

    async with tls_transport(tls[1]) as transport:
        # A pooled, verified connection to the same IP must not be reused for other.test.
        first = await transport.send(receiver.url_for("/hook", host="receiver.test"), BODY, {})
        second = await transport.send(receiver.url_for("/hook", host="other.test"), BODY, {})

    assert first.succeeded
    assert second.error == (
        "TLS error: certificate verify failed: "
        "Hostname mismatch, certificate is not valid for 'other.test'."
    )
    assert len(receiver.requests) == 1


async def test_tls_refuses_an_unknown_certificate_authority(
    tls_receiver: tuple[Receiver, list[str]],
) -> None:
    receiver, _names = tls_receiver

    async with tls_transport(None) as transport:
        outcome = await transport.send(receiver.url_for("/hook", host="receiver.test"), BODY, {})

    assert outcome.error is not None
    assert outcome.error.startswith("TLS error: certificate verify failed: ")
    assert receiver.requests == []


async def test_https_to_a_plain_http_server_is_a_tls_error(receiver: Receiver) -> None:
    async with Transport(timeout_seconds=5, allowed_networks=LOOPBACK_OPEN) as transport:
        outcome = await transport.send(
            receiver.url_for("/hook").replace("http://", "https://"), BODY, {}
        )

    assert outcome.error is not None
    assert outcome.error.startswith("TLS error: ")
