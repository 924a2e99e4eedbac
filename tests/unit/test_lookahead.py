"""Lookahead: whether a document selects a path below the current field."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry

from schema.lookahead import selects

PATH = ("nodes", "attempts")


@strawberry.type
class Attempt:
    number: int = 1


@strawberry.type
class Node:
    id: int = 1
    attempts: list[Attempt] = strawberry.field(default_factory=lambda: [Attempt()])


@strawberry.type
class Page:
    nodes: list[Node] = strawberry.field(default_factory=lambda: [Node()])
    count: int = 1


seen: list[bool] = []


@strawberry.type
class Query:
    @strawberry.field
    def page(self, info: strawberry.Info) -> Page:
        seen.append(selects(info, PATH))
        seen.append(selects(info, ("count",), PATH))
        return Page()


SCHEMA = strawberry.Schema(query=Query)

CASES: dict[str, tuple[str, bool]] = {
    "direct": ("{ page { nodes { attempts { number } } } }", True),
    "aliased": ("{ p: page { n: nodes { a: attempts { number } } } }", True),
    "named fragment": (
        "{ page { ...F } } fragment F on Page { nodes { attempts { number } } }",
        True,
    ),
    "inline fragment": ("{ page { ... on Page { nodes { ... { attempts { number } } } } } }", True),
    "skipped still counts": (
        "{ page { nodes { id attempts @skip(if: true) { number } } } }",
        True,
    ),
    "not below nodes": ("{ page { nodes { id } count } }", False),
    "only the page": ("{ page { count } }", False),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_selects(case: str) -> None:
    document, expected = CASES[case]
    seen.clear()
    result: Any = await SCHEMA.execute(document)
    assert result.errors is None
    assert seen == [expected, True if "count" in document else expected]
