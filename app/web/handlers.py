"""Exception handlers: the answers to what fails outside the resolvers.

Authentication and the rate limits run before any resolver, so their exceptions (and a
database that cannot be reached while they run) would otherwise reach the client as a
bare "Internal Server Error". Each gets a GraphQL-shaped error instead
(``app.web.refusals``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import suppress
from typing import Any, cast

import psycopg
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ExceptionHandler
from starlette.websockets import WebSocket

from app.core.outages import RETRY_AFTER_SECONDS, UNAVAILABLE_MESSAGE
from app.web.bearer import AmbiguousCredentials
from app.web.portal_access import CsrfRefused, SessionEnded
from app.web.rate_limit import RateLimited
from app.web.refusals import error_response, graphql_error

logger = logging.getLogger(__name__)


async def ambiguous_credentials(_: Request, error: Exception) -> Response:
    """400 for a request with two Authorization headers."""
    return error_response(
        graphql_error("Send one Authorization header, not several.", "BAD_REQUEST"),
        status_code=400,
    )


async def csrf_refused(_: Request, error: Exception) -> Response:
    """403 for a call with the portal's session cookie and no (or a wrong) CSRF token."""
    return error_response(
        graphql_error(
            "A portal session's calls carry its CSRF token in the X-Webhooks-CSRF header.",
            "CSRF",
        ),
        status_code=403,
    )


async def session_ended(_: Request, error: Exception) -> Response:
    """401 for a call with a portal session that is over."""
    return error_response(
        graphql_error("The portal session has ended; open a new portal link.", "UNAUTHENTICATED"),
        status_code=401,
    )


async def rate_limited(_: Request, error: RateLimited) -> Response:
    """429 with the GraphQL error and ``Retry-After``."""
    return error_response(
        error.error, status_code=429, headers={"retry-after": str(error.retry_after)}
    )


async def database_unavailable(
    connection: Request | WebSocket, error: Exception
) -> Response | None:
    """503 with a GraphQL error when the database cannot be reached.

    Resolvers' errors are already GraphQL errors, but authentication runs before any
    resolver: without this, a request arriving during a database outage got a bare
    "Internal Server Error" once the pool gave up waiting for a connection. A websocket
    is closed with 1013 ("try again later").
    """
    logger.warning("database unavailable (%s)", type(error).__name__)
    if isinstance(connection, WebSocket):
        with suppress(RuntimeError):  # already closed
            await connection.close(code=1013)
        return None
    return error_response(
        graphql_error(UNAVAILABLE_MESSAGE, "UNAVAILABLE"),
        status_code=503,
        headers={"retry-after": str(RETRY_AFTER_SECONDS)},
    )


EXCEPTION_HANDLERS: Mapping[Any, ExceptionHandler] = {
    # PoolTimeout is an OperationalError too. (One handler for both connection kinds, and
    # one typed for its exception: Starlette's types keep those apart.)
    psycopg.OperationalError: cast(ExceptionHandler, database_unavailable),
    RateLimited: cast(ExceptionHandler, rate_limited),
    AmbiguousCredentials: ambiguous_credentials,
    CsrfRefused: csrf_refused,
    SessionEnded: session_ended,
}
