"""Operations carrying strings that PostgreSQL cannot store are refused before they run.

PostgreSQL's text and jsonb cannot hold U+0000, and no UTF-8 can encode an unpaired
surrogate (JSON's ``"\ud800"`` decodes to one), so such a string (in a filter, an id, a
description, an event payload...) used to fail deep inside a query and reach the client
as an "Unexpected error", with a traceback in the log. No field has a use for either:
the whole operation is refused with a ``BAD_USER_INPUT`` error, whether the string is
written in the document or passed as a variable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import BREAK, DocumentNode, GraphQLError, StringValueNode, Visitor, visit
from strawberry.extensions import SchemaExtension

from app.core.validation import holds_nul, unstorable
from schema.documents import DocumentCache

MESSAGE = (
    "Strings must not contain the NUL character (\\u0000) or an unpaired surrogate"
    " (\\ud800-\\udfff alone)."
)


class RefuseNulCharacters(SchemaExtension):
    """Refuse NUL in variables, always, and in the document unless it is a kept one.

    Documents in ``known`` (see ``schema.documents``) passed this check when they were
    first seen: only documents that validated without any error are kept.
    """

    def __init__(self, known: DocumentCache | None = None) -> None:
        self._known = known

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        known = (
            self._known is not None
            and context.query is not None
            and self._known.holds(context.query, document)
        )
        if context.pre_execution_errors is None and (
            holds_nul(context.variables) or (not known and document_holds_nul(document))
        ):
            # Set before validation runs: Strawberry then skips validation and execution.
            context.pre_execution_errors = [
                GraphQLError(MESSAGE, extensions={"code": "BAD_USER_INPUT"})
            ]
        yield


def document_holds_nul(document: DocumentNode | None) -> bool:
    """Whether any string literal of the document has U+0000."""
    if document is None:
        return False
    finder = _NulFinder()
    visit(document, finder)
    return finder.found


class _NulFinder(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def enter_string_value(self, node: StringValueNode, *_: Any) -> Any:
        if unstorable(node.value):
            self.found = True
            return BREAK
        return None
