"""Validated documents are reused by their text; nothing else about a request is."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry
import strawberry.schema.schema as strawberry_schema
from graphql import parse

from schema import nul_characters
from schema.documents import CachedDocuments, DocumentCache
from schema.nul_characters import MESSAGE as NUL_MESSAGE
from schema.root import build_schema

VALID = "query Hello($name: String) { hello(name: $name) }"
INVALID = "{ hello nope }"
INTROSPECTION = "{ __schema { queryType { name } } }"
NUL_CHECKED = "{ __typename }"  # variables it does not declare are checked too


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, name: str | None = None) -> str:
        return f"hello {name or 'world'}"


class Calls:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.parsed = 0
        self.validated = 0
        parse_original = vars(strawberry_schema)["parse"]
        validate_original = vars(strawberry_schema)["validate"]

        def counting_parse(*args: Any, **kwargs: Any) -> Any:
            self.parsed += 1
            return parse_original(*args, **kwargs)

        def counting_validate(*args: Any, **kwargs: Any) -> Any:
            self.validated += 1
            return validate_original(*args, **kwargs)

        monkeypatch.setattr(strawberry_schema, "parse", counting_parse)
        monkeypatch.setattr(strawberry_schema, "validate", counting_validate)


def _schema(cache: DocumentCache) -> strawberry.Schema:
    return strawberry.Schema(query=Query, extensions=[lambda: CachedDocuments(cache)])


def test_the_cache_is_bounded_least_recently_used_first_out() -> None:
    cache = DocumentCache(size=2)
    first, second, third = parse("{ a }"), parse("{ b }"), parse("{ c }")
    cache.put("a", first)
    cache.put("b", second)
    assert cache.get("a") is first  # "a" is now the most recently used
    cache.put("c", third)
    assert len(cache) == 2
    assert cache.get("b") is None
    assert cache.get("a") is first
    assert cache.get("c") is third


async def test_a_repeated_valid_document_is_parsed_and_validated_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a schema with the cache
    calls = Calls(monkeypatch)
    schema = _schema(DocumentCache())
    # When the same text runs three times with different variables
    results = [
        await schema.execute(VALID, variable_values={"name": name}) for name in ("a", "b", "c")
    ]
    # Then each result is its own, and the document was parsed and validated once
    assert [result.data for result in results] == [
        {"hello": "hello a"},
        {"hello": "hello b"},
        {"hello": "hello c"},
    ]
    assert (calls.parsed, calls.validated) == (1, 1)


async def test_an_invalid_document_is_validated_every_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = Calls(monkeypatch)
    cache = DocumentCache()
    schema = _schema(cache)
    first = await schema.execute(INVALID)
    second = await schema.execute(INVALID)
    assert first.errors and second.errors
    assert [e.message for e in first.errors] == [e.message for e in second.errors]
    assert first.errors[0] is not second.errors[0]
    assert (calls.parsed, calls.validated) == (2, 2)
    assert len(cache) == 0


async def test_a_syntax_error_is_not_kept() -> None:
    cache = DocumentCache()
    result = await _schema(cache).execute("{ hello ")
    assert result.errors
    assert len(cache) == 0


async def test_each_api_schema_has_its_own_rules_and_cache() -> None:
    # Given introspection run (and its document kept) on a development schema
    development = await build_schema().execute(INTROSPECTION)
    assert development.errors is None
    # When a production schema gets the same text
    production = await build_schema(production=True).execute(INTROSPECTION)
    # Then its own rules refuse it
    assert production.errors
    assert "introspection" in production.errors[0].message.lower()


async def test_variables_with_nul_are_refused_even_for_a_kept_document() -> None:
    # Given a document the API schema has validated and kept
    schema = build_schema()
    assert (await schema.execute(NUL_CHECKED, variable_values={"x": "ok"})).errors is None
    # When it comes again with NUL in a variable
    refused = await schema.execute(NUL_CHECKED, variable_values={"x": "a\x00b"})
    # Then it is refused as before, and the next clean request runs
    assert refused.errors is not None
    assert [error.message for error in refused.errors] == [NUL_MESSAGE]
    assert (await schema.execute(NUL_CHECKED, variable_values={"x": "ok"})).errors is None


def test_the_cache_is_bounded_in_characters_of_query_text_too() -> None:
    cache = DocumentCache(size=10, characters=10)
    document = parse("{ a }")
    cache.put("a" * 11, document)  # larger than the whole cache: not kept
    assert len(cache) == 0
    cache.put("b" * 4, document)
    cache.put("c" * 4, document)
    cache.put("d" * 4, document)  # 12 characters: the oldest goes
    assert cache.get("b" * 4) is None
    assert cache.get("c" * 4) is document
    assert cache.get("d" * 4) is document
    cache.put("c" * 4, document)  # already held: nothing counted twice
    cache.put("e" * 2, document)
    assert len(cache) == 3


@pytest.mark.parametrize("bounds", [{"size": 0}, {"characters": 0}])
def test_a_cache_needs_room_for_one_document(bounds: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DocumentCache(**bounds)


async def test_a_kept_document_is_not_searched_for_nul_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a spy on the search of documents for NUL
    searched: list[object] = []
    search = nul_characters.document_holds_nul

    def spy(document: Any) -> bool:
        searched.append(document)
        return search(document)

    monkeypatch.setattr(nul_characters, "document_holds_nul", spy)
    schema = build_schema()
    # When a clean document comes twice, and one with NUL in a literal twice
    for _ in range(2):
        assert (await schema.execute(NUL_CHECKED)).errors is None
    nul_literal = '{ deliveries(filter: {webhook: "\\u0000"}) { nodes { id } } }'
    literal = [await schema.execute(nul_literal) for _ in range(2)]
    # Then the clean one was searched once, and the one with NUL refused each time
    assert len(searched) == 3  # the clean document once, the refused one each time
    for result in literal:
        assert result.errors is not None
        assert [error.message for error in result.errors] == [NUL_MESSAGE]
