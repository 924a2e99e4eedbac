"""Unexpected exceptions reach clients as "Unexpected error" with a correlation id.

The id is logged with the full exception, so an operator can find the cause of what a
client reports. Validation, permission and user errors (GraphQLErrors we raise, and
GraphQL's own validation errors) pass through unmasked.

A database that is unavailable (unreachable, out of disk, memory or connections; see
app/core/outages.py) is no unexpected error: the answer is the same retryable HTTP 503
``UNAVAILABLE`` with ``Retry-After`` as when no connection could be had before the first
resolver ran (app/web/handlers.py, ``database_unavailable``).
"""

from __future__ import annotations

import logging
import secrets

from graphql.error import GraphQLError
from starlette.responses import Response
from strawberry.extensions import MaskErrors

from app.core.outages import RETRY_AFTER_SECONDS, UNAVAILABLE_MESSAGE, is_unavailable

logger = logging.getLogger("app.graphql")

UNEXPECTED = "Unexpected error"


def is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def masked(error: GraphQLError, response: Response | None = None) -> GraphQLError:
    """The client's view of an unexpected error; the cause goes to the log with its id.

    The log record carries the path and the traceback, not the error's text: that text
    ends with graphql-core's excerpt of the document, literals and all. An unavailable
    database is the retryable UNAVAILABLE instead, and makes ``response`` (Strawberry's
    sub-response, whose status and headers become the HTTP answer's) a 503.
    """
    original = error.original_error
    if original is not None and is_unavailable(original):
        return unavailable(error, original, response)
    correlation_id = secrets.token_hex(8)
    logger.error(
        "unexpected error in %s (correlation id %s)",
        ".".join(str(part) for part in error.path or []) or "operation",
        correlation_id,
        exc_info=(type(original), original, original.__traceback__) if original else None,
        extra={"correlation_id": correlation_id},
    )
    return GraphQLError(
        message=f"{UNEXPECTED} (correlation id {correlation_id})",
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions={"code": "INTERNAL_SERVER_ERROR", "correlationId": correlation_id},
    )


def unavailable(
    error: GraphQLError, original: BaseException, response: Response | None
) -> GraphQLError:
    logger.warning(
        "database unavailable in %s (%s: %s)",
        ".".join(str(part) for part in error.path or []) or "operation",
        type(original).__name__,
        getattr(original, "sqlstate", None) or "no SQLSTATE",
    )
    if response is not None:
        response.status_code = 503
        response.headers["retry-after"] = str(RETRY_AFTER_SECONDS)
    return GraphQLError(
        message=UNAVAILABLE_MESSAGE,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions={"code": "UNAVAILABLE"},
    )


class MaskUnexpectedErrors(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected, error_message=UNEXPECTED)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        response = getattr(self.execution_context.context, "response", None)
        return masked(error, response if isinstance(response, Response) else None)
