"""GraphQL websockets that stay authorized for as long as they are open.

A websocket authenticates once, in its ``connection_init``, and may then live for hours.
So that a key revoked meanwhile stops working, and the rate limit counts what the socket
does, each connection is guarded:

- every operation (``subscribe``) is admitted like an
  HTTP request: the key is verified again and spends a token of its bucket. A revoked key
  closes the socket (4403); an empty bucket answers that operation with a RATE_LIMITED
  error and leaves the socket open;
- every ``key_check_seconds`` the key is verified again, so a socket that only listens to
  a subscription is closed (4403, "API key revoked.") within that time of the revocation;
  a portal session's socket (``app.web.portal_access``) likewise once the session expired
  or its minting key was revoked (4403, "Portal session ended.");
- after ``max_lifetime_seconds`` the socket is closed with 1001 (going away): clients
  reconnect and authenticate anew.

Re-verifying per socket was chosen over LISTEN/NOTIFY on revocation: it needs no trigger
and no listener, it sees every way a key stops being valid (revoked, deleted, its company
gone), and a notification lost while a listener reconnects would leave a socket open for
good. Its cost is one indexed lookup per socket per interval.

Only graphql-transport-ws is guarded: the server does not speak the legacy graphql-ws
protocol at all (a client asking only for it is refused at the handshake,
``app.web.graphql_app``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol, cast

import psycopg
from starlette.websockets import WebSocketDisconnect
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    ErrorMessage,
    SubscribeMessage,
)

from app.core.errors import WebhooksError
from app.core.outages import UNAVAILABLE_MESSAGE
from app.core.viewer import Viewer
from app.web.rate_limit import RateLimited
from schema.context import Context

logger = logging.getLogger(__name__)

# Close codes: 4403 as for a refused connection_init; 1001 asks the client to reconnect;
# 1013 is "try again later" (rate limited, database unavailable); 4400 a bad request.
REVOKED = (4403, "API key revoked.")
# A portal session's socket: the session expired, or the key that minted it was revoked.
SESSION_ENDED = (4403, "Portal session ended.")
LIFETIME_OVER = (1001, "Maximum connection lifetime reached; reconnect.")
UNAVAILABLE = (1013, UNAVAILABLE_MESSAGE)
CHECK_FAILED = (1011, "Unexpected error.")


class Close(Protocol):
    async def __call__(self, code: int, reason: str) -> None: ...


@dataclass(frozen=True)
class SocketRules:
    """How often an open socket's key is verified again, and how long a socket may live."""

    key_check_seconds: float
    max_lifetime_seconds: float


class SocketRefused(WebhooksError):
    """``connection_init`` is refused: close the socket with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class GuardedView(Protocol):
    """What the guard needs from the GraphQL view (``app.web.graphql_app.WebhooksGraphQL``)."""

    socket_rules: SocketRules

    async def admit_operation(self, context: Context) -> Viewer | None:
        """The viewer of the socket's key if it is still valid, spending a token; may raise
        RateLimited."""

    async def key_still_valid(self, context: Context) -> bool:
        """Whether the socket's key is still valid (spends nothing)."""


class _Guard:
    """The watch and the admission of one socket."""

    def __init__(self, view: object, context: Context, close: Close) -> None:
        self.view = cast(GuardedView, view)
        self.context = context
        self._close = close
        self.opened = time.monotonic()

    async def close(self, code_and_reason: tuple[int, str]) -> None:
        code, reason = code_and_reason
        with suppress(RuntimeError, WebSocketDisconnect):  # already closed, or the peer gone
            await self._close(code=code, reason=reason)

    async def watch(self, authenticated: Callable[[], bool]) -> None:
        """Close the socket at the end of its lifetime, or once its key is no longer valid.

        ``authenticated()`` says whether connection_init has been accepted yet.
        """
        rules = self.view.socket_rules
        while True:
            remaining = rules.max_lifetime_seconds - (time.monotonic() - self.opened)
            if remaining <= 0:
                await self.close(LIFETIME_OVER)
                return
            await asyncio.sleep(min(rules.key_check_seconds, remaining))
            if not authenticated() or time.monotonic() - self.opened >= rules.max_lifetime_seconds:
                continue
            try:
                valid = await self.view.key_still_valid(self.context)
            except psycopg.OperationalError as error:
                logger.warning(
                    "websocket key check: database unavailable (%s)", type(error).__name__
                )
                await self.close(UNAVAILABLE)
                return
            except Exception:  # fail closed: a socket whose key cannot be checked ends
                logger.exception("websocket key check failed")
                await self.close(CHECK_FAILED)
                return
            if not valid:
                await self.close(self.ended())
                return

    def ended(self) -> tuple[int, str]:
        """How to close the socket when its credential no longer stands."""
        viewer = self.context.viewer
        return SESSION_ENDED if viewer is not None and viewer.is_portal_session else REVOKED

    async def admit(self) -> tuple[Viewer | None, RateLimited | None]:
        """Admit one operation: (viewer, None), (None, None) when revoked, or the refusal."""
        try:
            return await self.view.admit_operation(self.context), None
        except RateLimited as limited:
            return None, limited

    async def run(
        self, handle: Callable[[], Awaitable[None]], authenticated: Callable[[], bool]
    ) -> None:
        watcher = asyncio.create_task(self.watch(authenticated), name="websocket-guard")
        try:
            await handle()
        finally:
            watcher.cancel()
            with suppress(asyncio.CancelledError):
                await watcher


class GuardedTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with the guard (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = _Guard(self.view, self.context, self.websocket.close)

    async def handle(self) -> None:
        await self.guard.run(super().handle, lambda: self.connection_acknowledged)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except SocketRefused as refused:
            await self.guard.close((refused.code, refused.reason))

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self.connection_acknowledged:
            viewer, limited = await self.guard.admit()
            if limited is not None:
                await self.send_message(
                    ErrorMessage(id=message["id"], type="error", payload=[limited.error])
                )
                return
            if viewer is None:
                await self.guard.close(self.guard.ended())
                return
        await super().handle_subscribe(message)
