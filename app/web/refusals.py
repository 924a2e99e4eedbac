"""Requests refused before GraphQL runs: the answer's shape, the log line, body limits.

Every such answer is a GraphQL-shaped error (``{"errors": [{"message", "extensions":
{"code"}}]}``) with an HTTP status, and leaves one INFO line in the log. The shape is
built here only (``graphql_error``, ``error_response``): the rate limit's 429 and its
websocket error message, the exception handlers and the body limits all use it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from graphql import GraphQLFormattedError
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.errors import WebhooksError
from app.core.settings import Settings

logger = logging.getLogger(__name__)


def graphql_error(message: str, code: str, **extensions: object) -> GraphQLFormattedError:
    """A GraphQL error as clients read it: ``extensions.code`` and any further extensions."""
    return {"message": message, "extensions": {"code": code, **extensions}}


def error_response(
    error: GraphQLFormattedError, *, status_code: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An HTTP answer carrying ``error``, for requests refused before GraphQL."""
    return JSONResponse({"errors": [error]}, status_code=status_code, headers=headers)


def log_refusal(status_code: int, reason: str) -> None:
    """One INFO line for a request refused before GraphQL (reasons are the service's own
    words, never the client's text)."""
    logger.info("HTTP request refused (%d): %s", status_code, reason)


class BodyLimits:
    """Refuse request bodies over a size cap (413) or slower than a deadline (408).

    The size is checked before anything reads the body (Content-Length) and while it is
    read (chunked bodies). The deadline covers the whole body, from the application's
    first read: a client trickling a byte a second would otherwise hold a connection
    and a request task for as long as it likes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_seconds: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large()(scope, receive, send)
            return
        received = 0
        deadline: float | None = None
        body_read = started = False
        refusal: Response | None = None

        async def limited_receive() -> Any:
            nonlocal received, deadline, body_read, refusal
            if body_read:  # later reads wait for the disconnect: no deadline
                return await receive()
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + self.timeout_seconds
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                refusal = self._too_slow()
                raise _Refused from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refusal = self._too_large()
                    raise _Refused
                body_read = not message.get("more_body", False)
            return message

        async def guarded_send(message: Any) -> None:
            nonlocal started
            # Starlette's error middleware answers the _Refused raised in the middle of
            # reading a body with a 500 (then re-raises it): drop that answer so the
            # client gets the refusal.
            if refusal is not None:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _Refused:
            if started:
                raise
        if refusal is not None and not started:
            await refusal(scope, receive, send)

    def _too_large(self) -> Response:
        log_refusal(413, f"body over {self.max_bytes} bytes")
        return error_response(
            graphql_error(f"Request body exceeds {self.max_bytes} bytes.", "TOO_LARGE"),
            status_code=413,
        )

    def _too_slow(self) -> Response:
        log_refusal(408, f"body incomplete after {self.timeout_seconds:g} s")
        # The rest of the body may still be on its way: the connection cannot be reused.
        return error_response(
            graphql_error(
                f"The request body did not arrive within {self.timeout_seconds:g} seconds.",
                "REQUEST_TIMEOUT",
            ),
            status_code=408,
            headers={"connection": "close"},
        )


class _Refused(WebhooksError):
    pass


def body_cap(settings: Settings) -> int:
    """The largest request body (and websocket message): room for a maximal payload plus
    the document around it."""
    return max(settings.max_request_bytes, settings.max_payload_bytes + 64 * 1024)
