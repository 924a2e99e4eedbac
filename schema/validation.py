"""Validation as the API runs it: suggestions hidden in production, one operation per request.

Strawberry validates with graphql-core's defaults, which add "Did you mean ...?" to the
errors of unknown fields, arguments, types and enum values: with introspection off, that
hands out the schema one guess at a time. And without ``operationName`` it runs the first
operation of a document holding several, where the specification asks for an error.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError, OperationDefinitionNode, validate
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

OPERATION_NAME_REQUIRED = "Must provide operation name if query contains multiple operations."


class ValidateDocument(SchemaExtension):
    """Validate in place of Strawberry, with or without suggestions; require operationName.

    Place it after the document cache: a kept document comes with an empty error list
    and is not validated again, but the operation name is checked on every request
    since it comes with the request, not with the document.
    """

    def __init__(self, *, hide_suggestions: bool) -> None:
        self._hide_suggestions = hide_suggestions

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            context.pre_execution_errors = validate(
                context.schema._schema,
                document,
                # The rules Strawberry itself would validate with.
                (*context.validation_rules, MaybeNullValidationRule, OneOfInputValidationRule),
                hide_suggestions=self._hide_suggestions,
            )
        if (
            document is not None
            and context.pre_execution_errors == []
            and getattr(context, "_provided_operation_name", None) is None
            and sum(isinstance(d, OperationDefinitionNode) for d in document.definitions) > 1
        ):
            # A fresh list: the one checked here may be what the cache compares with.
            context.pre_execution_errors = [
                GraphQLError(OPERATION_NAME_REQUIRED, extensions={"code": "BAD_USER_INPUT"})
            ]
        yield
