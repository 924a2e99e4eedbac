"""Transport: sends one delivery attempt over HTTP and says what happened.

:meth:`Transport.send` never raises for a delivery failure; it returns an
:class:`AttemptOutcome` whose ``error`` is one of these phrases (the job and the
failure email show them as they are):

- ``HTTP <status>``: the receiver answered with a 4xx or 5xx status
- ``redirect (<status>) not followed``: a 3xx status; redirects are never followed
- ``timed out after <n> s``: the whole attempt (lookup, connect, send, response)
  took longer than the configured timeout
- ``connection refused``, ``connection reset``,
  ``connection closed before a full response``
- ``TLS error: <reason>``
- ``DNS lookup failed for <host>``
- ``blocked: <host> resolves to <kind of address> (<address>)`` or
  ``blocked: <host> is <kind of address>``: the target policy refused the address
- the target policy's message for a malformed URL
- ``connection failed (<reason>)``, ``invalid HTTP response (<reason>)`` and
  ``unexpected error (<exception type>)`` for the rare rest

No message contains the URL's query string, where API key values live.

Address pinning: the host is resolved once per attempt by the target policy and the
connection goes to that checked address. The URL keeps its host name, so the Host
header, TLS SNI and certificate verification all use the name, and pooled connections
are keyed by name: a connection verified for one host is never reused for another that
happens to share its address. Each connection pool gets a network backend that connects
only to the address pinned for the current attempt and refuses anything else, so httpx
never resolves a name on its own (that second lookup is the DNS-rebinding hole).
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
import zlib
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

import httpcore
import httpx

from app.target_policy import (
    IPAddress,
    Network,
    Resolver,
    SystemResolver,
    TargetError,
    parse_callback_url,
    resolve_target,
)

logger = logging.getLogger(__name__)

BODY_EXCERPT_BYTES = 4096


@dataclass(frozen=True)
class AttemptOutcome:
    """What one attempt came to.

    ``status`` is None when no response arrived; ``body_excerpt`` holds at most the
    first 4 KiB of the response body (decoded as UTF-8, invalid bytes replaced), or
    None when no response arrived. ``error`` is None exactly when ``succeeded``.
    """

    succeeded: bool
    status: int | None
    body_excerpt: str | None
    error: str | None
    duration_ms: int
    started_at: datetime


@dataclass(frozen=True)
class _Pin:
    host: str
    port: int
    address: IPAddress


# The address checked for the attempt running in this task. httpcore connects inside
# the task that sends the request, so a context variable reaches its network backend.
_pinned: ContextVar[_Pin | None] = ContextVar("planomatic_pinned_target", default=None)


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to the pinned address of the current attempt."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[object] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        pin = _pinned.get()
        if pin is None or pin.host != host or pin.port != port:
            raise httpcore.ConnectError("refused to connect to an address that was not checked")
        # socket_options are never set on our pool, so there is nothing to pass on.
        return await self._inner.connect_tcp(
            str(pin.address), port, timeout=timeout, local_address=local_address
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's interface
        socket_options: Iterable[object] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not delivery targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedHTTPTransport(httpx.AsyncHTTPTransport):
    def __init__(self, *, ssl_context: ssl.SSLContext, limits: httpx.Limits) -> None:
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        # httpx offers no way to choose the network backend, so the pool it built is
        # replaced by an equivalent one with ours. test_transport proves the pinning
        # end to end, so an httpx upgrade that changes this fails loudly.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            retries=0,
            network_backend=_PinnedBackend(),
        )


class Transport:
    """The outbound HTTP sender, shared by all deliveries of a process.

    Use it as an async context manager or call :meth:`aclose` when done.

    It keeps ``pool_shards`` httpx clients and sends each attempt through the one with
    the fewest attempts in flight. httpcore 1.0's pool does work quadratic in its
    connection count on every request (encode/httpx#3215); measured here at 50
    concurrent attempts, one pool let single requests to an instant local receiver
    stall for 5-12 s, and eight small pools kept them under ~2 s.
    """

    def __init__(
        self,
        *,
        timeout_seconds: float = 15.0,
        allowed_networks: Sequence[Network] = (),
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 100,
        pool_shards: int = 8,
        require_https: bool = False,
    ) -> None:
        """``ssl_context`` defaults to certifi's CA bundle with hostname checking.
        ``max_connections`` is the capacity across all pools, rounded up to a multiple
        of the pool count; waiting for a free connection counts against an attempt's
        timeout, so keep it at or above the number of concurrent attempts."""
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if pool_shards < 1 or max_connections < 1:
            raise ValueError("pool_shards and max_connections must be at least 1")
        pool_shards = min(pool_shards, max_connections)
        self._timeout_seconds = timeout_seconds
        self._allowed_networks = tuple(allowed_networks)
        self._resolver: Resolver = resolver if resolver is not None else SystemResolver()
        self._require_https = require_https
        context = ssl_context if ssl_context is not None else httpx.create_ssl_context()
        # Rounded up: with the least-busy pool chosen, any max_connections concurrent
        # attempts always find a free connection.
        per_shard = math.ceil(max_connections / pool_shards)
        limits = httpx.Limits(
            max_connections=per_shard,
            max_keepalive_connections=per_shard,
            keepalive_expiry=30.0,
        )
        self._clients = tuple(
            httpx.AsyncClient(
                transport=_PinnedHTTPTransport(ssl_context=context, limits=limits),
                follow_redirects=False,
                trust_env=False,
                # A backstop only: the deadline around the whole attempt is what counts.
                timeout=httpx.Timeout(timeout_seconds),
                # A compressed body could not be excerpted without inflating it.
                headers={"accept-encoding": "identity"},
            )
            for _ in range(pool_shards)
        )
        self._in_flight = [0] * pool_shards

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every pooled connection."""
        for client in self._clients:
            await client.aclose()

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> AttemptOutcome:
        """POST ``body`` with ``headers`` to ``url`` and report the outcome.

        Never raises for a delivery failure (only cancellation propagates). The whole
        attempt, DNS lookup included, is bounded by the timeout.
        """
        started_at = datetime.now(UTC)
        started = time.monotonic()
        response = _Response()
        error: str | None
        try:
            async with asyncio.timeout(self._timeout_seconds):
                error = await self._attempt(url, body, headers, response)
        except TargetError as exc:
            error = exc.message
        except (TimeoutError, httpx.TimeoutException):
            error = f"timed out after {self._timeout_seconds:g} s"
        except (httpx.TransportError, OSError) as exc:
            error = _describe_failure(exc)
        except Exception as exc:
            # The contract is an outcome, not an exception; the log keeps the details.
            logger.exception("unexpected error while sending a delivery attempt")
            error = f"unexpected error ({type(exc).__name__})"
        return AttemptOutcome(
            succeeded=error is None,
            status=response.status,
            body_excerpt=response.excerpt(),
            error=error,
            duration_ms=round((time.monotonic() - started) * 1000),
            started_at=started_at,
        )

    async def _attempt(
        self, url: str, body: bytes, headers: Mapping[str, str], response: _Response
    ) -> str | None:
        target = await resolve_target(
            parse_callback_url(url, require_https=self._require_https),
            self._resolver,
            self._allowed_networks,
        )
        callback = target.url
        shard = min(range(len(self._clients)), key=self._in_flight.__getitem__)
        client = self._clients[shard]
        # Built from the parsed parts, so httpx requests exactly the host that was checked.
        request = client.build_request("POST", callback.full, content=body, headers=headers)
        token = _pinned.set(_Pin(callback.host, callback.port, target.address))
        self._in_flight[shard] += 1
        try:
            streamed = await client.send(request, stream=True)
            try:
                response.status = streamed.status_code
                response.content_encoding = streamed.headers.get("content-encoding", "")
                await _read_prefix(streamed, response)
            finally:
                await streamed.aclose()
        finally:
            self._in_flight[shard] -= 1
            _pinned.reset(token)
        status = streamed.status_code
        if 200 <= status < 300:
            return None
        if 300 <= status < 400:
            return f"redirect ({status}) not followed"
        return f"HTTP {status}"


class _Response:
    """What has arrived so far, kept outside the deadline so a timeout during the body
    still reports the status."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.content_encoding = ""
        self.prefix = bytearray()

    def excerpt(self) -> str | None:
        if self.status is None:
            return None
        raw = bytes(self.prefix[:BODY_EXCERPT_BYTES])
        return _inflate(raw, self.content_encoding).decode("utf-8", errors="replace")


async def _read_prefix(response: httpx.Response, into: _Response) -> None:
    # Stop after the first 4 KiB: a receiver must not make us download a huge body.
    chunks = response.aiter_raw()
    try:
        async for chunk in chunks:
            into.prefix += chunk
            if len(into.prefix) >= BODY_EXCERPT_BYTES:
                break
    finally:
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()


def _inflate(raw: bytes, content_encoding: str) -> bytes:
    """Decompress an excerpt if the receiver compressed it despite being asked not to;
    ``max_length`` keeps a compression bomb harmless."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        return f"[{encoding}-encoded body not shown]".encode()
    try:
        return zlib.decompressobj(wbits).decompress(raw, BODY_EXCERPT_BYTES)
    except zlib.error:
        return f"[undecodable {encoding} body]".encode()


def _describe_failure(exc: BaseException) -> str:
    """A short phrase for a network failure, from the innermost cause that says most.

    httpx wraps httpcore's exception, which wraps the socket or TLS error.
    """
    chain = _causes(exc)
    for cause in chain:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS error: certificate verify failed: {cause.verify_message}"
    for cause in chain:
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason or cause.strerror or type(cause).__name__
            return f"TLS error: {str(reason).replace('_', ' ').lower()}"
    for cause in chain:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, (BrokenPipeError, ConnectionAbortedError)):
            return "connection closed before a full response"
    if any(isinstance(cause, httpx.RemoteProtocolError) for cause in chain):
        text = str(exc).lower()
        if "closed" in text or "disconnected" in text:
            return "connection closed before a full response"
        return f"invalid HTTP response ({_shorten(str(exc))})"
    if isinstance(exc, (httpx.ReadError, httpx.WriteError)):
        return "connection closed before a full response"
    for cause in chain:
        if isinstance(cause, OSError) and cause.strerror:
            return f"connection failed ({cause.strerror.lower()})"
    return f"connection failed ({_shorten(str(exc)) or type(exc).__name__})"


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
