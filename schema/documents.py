"""Parsed and validated documents, kept by their text, so a repeated operation skips both.

Clients send the same few documents over and over (the order system's ``publishEvent``,
a dashboard's page of deliveries): parsing and validating them again costs more CPU than
executing a small one. Validation depends only on the document and the schema (with its
rules), never on variables, so a document that passed once passes again; only those are
kept. Invalid documents are parsed and validated every time, so their errors are fresh
objects for each request.

The cache belongs to one schema (its rules: depth, aliases, introspection) and is bounded
in documents and in characters of query text, least recently used first out, so unique
query texts cannot grow it without limit: a parsed document weighs about a hundred times
its text, so the bound is in characters, not documents alone (README, "Performance").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from graphql import DocumentNode
from strawberry.extensions import SchemaExtension

DEFAULT_SIZE = 256
DEFAULT_CHARACTERS = 256 * 1024


class DocumentCache:
    """Documents that passed validation against one schema, by query text (LRU)."""

    def __init__(self, size: int = DEFAULT_SIZE, characters: int = DEFAULT_CHARACTERS) -> None:
        if size < 1 or characters < 1:
            raise ValueError("size and characters must be at least 1")
        self._size = size
        self._characters = characters
        self._held = 0  # characters of the query texts held
        self._documents: OrderedDict[str, DocumentNode] = OrderedDict()

    def __len__(self) -> int:
        return len(self._documents)

    def get(self, query: str) -> DocumentNode | None:
        document = self._documents.get(query)
        if document is not None:
            self._documents.move_to_end(query)
        return document

    def holds(self, query: str, document: DocumentNode | None) -> bool:
        """Whether ``document`` is the one kept for ``query`` (it passed validation)."""
        return document is not None and self._documents.get(query) is document

    def put(self, query: str, document: DocumentNode) -> None:
        if len(query) > self._characters or query in self._documents:
            return
        self._documents[query] = document
        self._held += len(query)
        while len(self._documents) > self._size or self._held > self._characters:
            oldest, _ = self._documents.popitem(last=False)
            self._held -= len(oldest)


class CachedDocuments(SchemaExtension):
    """Reuse a validated document for the same text: no parsing, no validation.

    Place it after any extension whose ``on_validate`` must still run for every request
    (the NUL check of variables): those see the cached document as usual, and one that
    refuses the request sets ``pre_execution_errors`` before this one looks.
    """

    def __init__(self, cache: DocumentCache) -> None:
        self._cache = cache
        self._known = False

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            document = self._cache.get(context.query)
            if document is not None:
                context.graphql_document = document  # Strawberry then does not parse
                self._known = True
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if self._known:
            if context.pre_execution_errors is None:
                context.pre_execution_errors = []  # valid already: Strawberry skips validation
            yield
            return
        yield
        # Validation ran inside this hook; an empty list means the document passed.
        if (
            context.pre_execution_errors == []
            and context.query
            and context.graphql_document is not None
        ):
            self._cache.put(context.query, context.graphql_document)
