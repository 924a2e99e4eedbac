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
- any of these followed by `` (status <status>)``, the timeout as ``timed out after <n> s
  reading the response body (status <status>)``: the status line arrived but the body
  did not; the outcome's ``status`` is then None (no complete response arrived)
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
happens to share its address. The HTTP client never resolves a name on its own (that
second lookup is the DNS-rebinding hole): its resolver answers only with the address
pinned for the current attempt, and refuses anything else.

The client is httpx over aiohttp's connection pool (the ``httpx-aiohttp`` transport):
httpcore's pool cost grows with the connections in flight (encode/httpx#3215) and made
the HTTP client most of a delivery's cost; see README, "Performance". Cookies are never
kept: one company's receiver must not plant a cookie that another company's delivery
to the same host carries back. A response that may have no body (204, 304) but carries
one anyway is taken as its status says, and its connection is dropped instead of pooled
(``app/delivery/http_connection.py``): its stray bytes never reach the next response.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
import zlib
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from httpx_aiohttp import AiohttpTransport

from app.core.target_policy import (
    IPAddress,
    Network,
    Resolver,
    SystemResolver,
    TargetError,
    parse_callback_url,
    resolve_target,
)
from app.delivery.http_connection import StrictConnector

logger = logging.getLogger(__name__)

BODY_EXCERPT_BYTES = 4096
REPLACEMENT = "\ufffd"  # what the excerpt shows for a byte it cannot show


@dataclass(frozen=True)
class AttemptOutcome:
    """What one attempt came to.

    ``status`` is None when no complete response arrived; ``body_excerpt`` holds at most
    the first 4 KiB of the response body (decoded as UTF-8, invalid bytes and NULs shown
    as U+FFFD; see :func:`storable_text`), or None when no complete response arrived.
    ``error`` is None exactly when ``succeeded``.
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


# The address checked for the attempt running in this task. aiohttp resolves the host
# inside the task that sends the request (its DNS cache is off), so a context variable
# reaches the resolver.
_pinned: ContextVar[_Pin | None] = ContextVar("planomatic_pinned_target", default=None)


class _PinnedResolver(AbstractResolver):
    """Answers only with the pinned address of the current attempt."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        pin = _pinned.get()
        if pin is None or pin.host != host or pin.port != port:
            raise OSError("refused to connect to an address that was not checked")
        return [
            ResolveResult(
                hostname=host,
                host=str(pin.address),
                port=port,
                family=socket.AF_INET6 if pin.address.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        pass


class Transport:
    """The outbound HTTP sender, shared by all deliveries of a process.

    Use it as an async context manager or call :meth:`aclose` when done.
    """

    def __init__(
        self,
        *,
        timeout_seconds: float = 15.0,
        allowed_networks: Sequence[Network] = (),
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 100,
        require_https: bool = False,
    ) -> None:
        """``ssl_context`` defaults to certifi's CA bundle with hostname checking.
        Waiting for a free connection counts against an attempt's timeout, so keep
        ``max_connections`` at or above the number of concurrent attempts."""
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._timeout_seconds = timeout_seconds
        self._allowed_networks = tuple(allowed_networks)
        self._resolver: Resolver = resolver if resolver is not None else SystemResolver()
        self._require_https = require_https
        context = ssl_context if ssl_context is not None else httpx.create_ssl_context()

        def session() -> aiohttp.ClientSession:
            # Made on the first request, inside the event loop that will use it.
            connector = StrictConnector(
                limit=max_connections,
                ssl=context,
                resolver=_PinnedResolver(),
                use_dns_cache=False,
                keepalive_timeout=30.0,
            )
            return aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
            )

        # The transport is used as it is, without httpx.AsyncClient on top: the client's
        # URL and header merging, cookie jar and redirect and auth machinery cost as much
        # CPU as aiohttp's whole request, and a delivery needs none of them (redirects are
        # never followed, cookies never kept).
        self._http = AiohttpTransport(client=session, trust_env=False)
        # A backstop only: the deadline around the whole attempt is what counts.
        self._timeouts = httpx.Timeout(timeout_seconds).as_dict()

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
        await self._http.aclose()

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
        except TimeoutError:
            error = f"timed out after {self._timeout_seconds:g} s"
        except (httpx.TransportError, aiohttp.ClientError, OSError) as exc:
            error = _describe_failure(exc, self._timeout_seconds)
        except Exception as exc:
            # The contract is an outcome, not an exception; the log keeps the details.
            logger.exception("unexpected error while sending a delivery attempt")
            error = f"unexpected error ({type(exc).__name__})"
        status, excerpt = response.status, response.excerpt()
        if error is not None and status is not None and not response.complete:
            # The status line arrived, the response did not: no status is recorded, so
            # that a FAILED delivery never shows "last status 200".
            error = _mid_body(error, status)
            status = excerpt = None
        return AttemptOutcome(
            succeeded=error is None,
            status=status,
            body_excerpt=excerpt,
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
        # Built from the parsed parts, so the client requests exactly the host that was
        # checked.
        request = httpx.Request(
            "POST",
            callback.full,
            content=body,
            # A compressed body could not be excerpted without inflating it.
            headers={**headers, "accept-encoding": "identity"},
            extensions={"timeout": self._timeouts},
        )
        token = _pinned.set(_Pin(callback.host, callback.port, target.address))
        try:
            streamed = await self._http.handle_async_request(request)
            try:
                response.status = streamed.status_code
                response.content_encoding = streamed.headers.get("content-encoding", "")
                await _read_prefix(streamed, response)
                response.complete = True
            finally:
                await streamed.aclose()
        finally:
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
        self.complete = False  # the body (its first 4 KiB) arrived too

    def excerpt(self) -> str | None:
        if self.status is None:
            return None
        raw = bytes(self.prefix[:BODY_EXCERPT_BYTES])
        return storable_text(_inflate(raw, self.content_encoding))


def storable_text(raw: bytes) -> str:
    """Any bytes as text PostgreSQL can store and GraphQL can show: UTF-8 decoded, and
    each invalid byte and each NUL (U+0000, which ``text`` cannot hold) shown as U+FFFD.

    UTF-16 bodies (``o\\0k\\0``), binary bodies and inflated zeros are full of NULs; one
    that reached the database made recording the attempt fail.
    """
    return raw.decode("utf-8", errors="replace").replace("\x00", REPLACEMENT)


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


def _mid_body(error: str, status: int) -> str:
    """The failure of a response that stopped after its status line."""
    if error.startswith("timed out"):
        return f"{error} reading the response body (status {status})"
    return f"{error} (status {status})"


def _describe_failure(exc: BaseException, timeout_seconds: float) -> str:
    """A short phrase for a network failure, from the innermost cause that says most.

    httpx wraps aiohttp's exception, which wraps (or, for connection errors, holds as
    ``os_error``) the socket or TLS error.
    """
    chain = _causes(exc)
    # aiohttp's TLS errors subclass ssl's but carry none of its details; the error they
    # wrap follows them in the chain.
    tls_errors = [cause for cause in chain if not isinstance(cause, aiohttp.ClientError)]
    for cause in tls_errors:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS error: certificate verify failed: {cause.verify_message}"
    for cause in tls_errors:
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason or cause.strerror or type(cause).__name__
            return f"TLS error: {str(reason).replace('_', ' ').lower()}"
    for cause in chain:
        if isinstance(cause, (TimeoutError, aiohttp.ServerTimeoutError)):
            return f"timed out after {timeout_seconds:g} s"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(
            cause,
            (
                BrokenPipeError,
                ConnectionAbortedError,
                aiohttp.ServerDisconnectedError,
                aiohttp.ClientPayloadError,
            ),
        ):
            return "connection closed before a full response"
    for cause in chain:
        if isinstance(cause, aiohttp.ClientResponseError):
            return f"invalid HTTP response ({_shorten(cause.message)})"
    for cause in chain:
        if isinstance(cause, OSError) and cause.strerror:
            return f"connection failed ({cause.strerror.lower()})"
    return f"connection failed ({_shorten(str(exc)) or type(exc).__name__})"


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        held: Any = getattr(current, "os_error", None)  # aiohttp's connection errors
        if isinstance(held, BaseException) and held not in chain:
            chain.append(held)
        current = current.__cause__ or current.__context__
    return chain


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
