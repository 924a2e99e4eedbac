"""Lookahead: whether a document selects a path below the current field."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import strawberry
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse

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


def page_bomb(fragments: int) -> str:
    """P0 selects the attempts; each Pn spreads P(n-1) twice: 2^n copies of P0."""
    definitions = ["fragment P0 on Page { nodes { attempts { number } } }"] + [
        f"fragment P{n} on Page {{ ...P{n - 1} ...P{n - 1} }}" for n in range(1, fragments + 1)
    ]
    return f"{{ page {{ count ...P{fragments} }} }} " + " ".join(definitions)


@pytest.mark.timeout(30)  # expanding every spread (2^40) would never end
async def test_a_fragment_bomb_is_looked_into_once_per_fragment() -> None:
    seen.clear()
    result: Any = await SCHEMA.execute(page_bomb(40))
    assert result.errors is None
    assert seen == [True, True]


def test_a_cycle_of_fragments_ends_the_search() -> None:
    # Validation refuses the cycle before any resolver runs; the search must end all the
    # same when called on such a document.
    document = parse("{ page { ...A } } fragment A on Page { ...B } fragment B on Page { ...A }")
    [operation] = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    [page] = operation.selection_set.selections
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    info: Any = SimpleNamespace(_raw_info=SimpleNamespace(field_nodes=[page], fragments=fragments))
    assert selects(info, PATH) is False
