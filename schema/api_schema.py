"""The service's Strawberry schema class: how errors are logged, which operations HTTP runs.

Strawberry's own ``process_errors`` logs every error at ERROR with its traceback, and a
GraphQL error's text ends with graphql-core's excerpt of the document: whatever literals
the document holds (an API key parameter value written inline) landed in the log each
time such a request failed, for a typo as much as for a wrong key. Here a client's
mistake is one INFO line with codes and places only; an unexpected error is masked
here (see ``schema.masking``), so it is masked and logged whichever path it came by, an
exception in an extension included, which Strawberry's ``MaskErrors`` never sees.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import GraphQLError, GraphQLSyntaxError
from starlette.responses import Response
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from app.core.errors import WebhooksError
from schema.masking import is_unexpected, masked

logger = logging.getLogger("app.graphql")

LOGGED_ERRORS = 5


class SubscriptionOverHttp(WebhooksError, InvalidOperationTypeError):
    """A ``subscription`` sent as an HTTP request (Strawberry answers it with HTTP 400)."""

    def __init__(self) -> None:
        super().__init__(OperationType.SUBSCRIPTION)

    def as_http_error_reason(self, method: str) -> str:
        return (
            "Subscriptions run over a websocket on /graphql (subprotocol"
            f" graphql-transport-ws), not over HTTP {method}."
        )


class ApiSchema(strawberry.Schema):
    """``strawberry.Schema`` with the service's error handling, executing with
    graphql-core's suggestions on or off.

    Variables are checked at execution: an unknown input field or enum value of a
    variable would otherwise still come back with a suggestion (``schema.validation``
    hides them in validation).
    """

    def __init__(self, *args: Any, hide_suggestions: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hide_suggestions = hide_suggestions

    def _get_custom_context_kwargs(
        self, operation_extensions: dict[str, Any] | None = None, *, sync: bool = False
    ) -> dict[str, Any]:
        kwargs = super()._get_custom_context_kwargs(operation_extensions, sync=sync)
        kwargs["hide_suggestions"] = self._hide_suggestions
        return kwargs

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Run a query or a mutation. A subscription run this way (HTTP: websockets use
        ``subscribe``) resolved to a stream that the HTTP answer cannot carry: a masked
        INTERNAL_SERVER_ERROR, now a clear HTTP 400."""
        allowed = set(allowed_operation_types or DEFAULT_ALLOWED_OPERATION_TYPES)
        allowed.discard(OperationType.SUBSCRIPTION)
        try:
            return await super().execute(
                query,
                variable_values,
                context_value,
                root_value,
                operation_name,
                allowed,
                operation_extensions,
            )
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.SUBSCRIPTION:
                raise SubscriptionOverHttp from None
            raise

    def process_errors(
        self,
        errors: list[GraphQLError],
        execution_context: ExecutionContext | None = None,
    ) -> None:
        """Mask unexpected errors in place (the list is the one the client gets) and log
        the client's errors as one line."""
        refused: list[GraphQLError] = []
        context = execution_context.context if execution_context is not None else None
        response = getattr(context, "response", None)
        for index, error in enumerate(errors):
            if is_unexpected(error):
                errors[index] = masked(error, response if isinstance(response, Response) else None)
            else:
                refused.append(error)
        if refused:
            log_client_errors(refused)


def log_client_errors(errors: list[GraphQLError]) -> None:
    """One INFO line: each error's code and where it is, never its message (a message
    can quote the document or a variable: "found \\"...\\"", "got invalid value ...")."""
    described = [describe(error) for error in errors[:LOGGED_ERRORS]]
    if len(errors) > LOGGED_ERRORS:
        described.append(f"and {len(errors) - LOGGED_ERRORS} more")
    logger.info("GraphQL request refused: %s", "; ".join(described))


def describe(error: GraphQLError) -> str:
    code = (error.extensions or {}).get("code")
    if not isinstance(code, str):
        syntax = isinstance(error, GraphQLSyntaxError)
        code = "GRAPHQL_PARSE_FAILED" if syntax else "GRAPHQL_VALIDATION_FAILED"
    if error.path:
        return f"{code} at {'.'.join(str(part) for part in error.path)}"
    if error.locations:
        return f"{code} at " + ", ".join(f"{at.line}:{at.column}" for at in error.locations)
    return code
