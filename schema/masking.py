"""Unexpected exceptions reach clients as "Unexpected error" with a correlation id.

The id is logged with the full exception, so an operator can find the cause of what a
client reports. Validation, permission and user errors (GraphQLErrors we raise, and
GraphQL's own validation errors) pass through unmasked.
"""

from __future__ import annotations

import logging
import secrets

from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors

logger = logging.getLogger("app.graphql")

UNEXPECTED = "Unexpected error"


def is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def masked(error: GraphQLError) -> GraphQLError:
    """The client's view of an unexpected error; the cause goes to the log with its id.

    The log record carries the path and the traceback, not the error's text: that text
    ends with graphql-core's excerpt of the document, literals and all.
    """
    correlation_id = secrets.token_hex(8)
    original = error.original_error
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


class MaskUnexpectedErrors(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected, error_message=UNEXPECTED)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return masked(error)
