"""Depth, aliases and cost of operations: what they count, and in linear time."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from graphql import GraphQLSchema, parse
from graphql.validation.rules import overlapping_fields_can_be_merged

from schema import limits
from schema.documents import DocumentCache
from schema.limits import COST_CODE, UNPAGED_LENGTH, OperationMeasure, measure_document
from schema.root import MAX_ALIASES, MAX_COST, MAX_DEPTH, OVERLAP_BUDGET, build_schema

SCHEMA: GraphQLSchema = build_schema()._schema
README = Path(__file__).resolve().parents[2] / "README.md"

TEN_IDS = "{ deliveries(first: 10) { nodes { id } } }"
TEN_EDGES = "{ deliveries(first: 10) { edges { cursor node { id } } pageInfo { hasNextPage } } }"
DEFAULT_PAGE = "{ deliveries { nodes { id } } }"  # `first` defaults to 50
VARIABLE_PAGE = "query Page($first: Int) { deliveries(first: $first) { nodes { id } } }"
OVER_THE_CAP = "{ deliveries(first: 1000) { nodes { id } } }"
ATTEMPTS = "{ delivery(id: 1) { attempts { number } } }"  # a list without `first`: 10
# An event's deliveries and each one's attempts: 10 of each.
EVENT_DELIVERIES = "{ event(id: 1) { deliveries { id attempts { number } } } }"
TWO_ALIASES = """
{ a: deliveries(first: 10) { nodes { id } } b: deliveries(first: 10) { nodes { id } } }
"""
VIA_FRAGMENT = """
{ deliveries(first: 10) { ...Page } }
fragment Page on DeliveryConnection { nodes { ...Ids } }
fragment Ids on Delivery { id }
"""
INTROSPECTION = "{ __schema { types { fields { name } } } }"
CYCLE = "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A __typename }"
# The issue's query: 100 x 100 x 100 deliveries, 15 times over.
NESTED = """
  deliveries(first: 100) { nodes { subscription {
    deliveries(first: 100) { nodes { subscription {
      deliveries(first: 100) { nodes { id } } } } } } } }
"""
NESTED_ALIASED = "{" + " ".join(f"a{n}: {NESTED}" for n in range(15)) + "}"
# A page of 100 with everything but the subscription, and its attempts.
FULL_PAGE = """
{ deliveries(first: 100, filter: {status: FAILED}) {
    nodes { id webhookId status cycle attemptCount maxAttempts nextAttemptAt lastAttemptAt
            lastResponseStatus createdAt completedAt event { id subject }
            attempts { cycle number startedAt durationMs responseStatus error succeeded } }
    pageInfo { hasNextPage endCursor } } }
"""


def bomb(fragments: int, field: str = "__typename") -> str:
    """F0 selects one field; each Fn spreads F(n-1) twice; the query spreads the last."""
    definitions = [f"fragment F0 on Query {{ {field} }}"] + [
        f"fragment F{n} on Query {{ ...F{n - 1} ...F{n - 1} }}" for n in range(1, fragments + 1)
    ]
    return " ".join(definitions) + f" query Bomb {{ ...F{fragments} }}"


def measure(document: str) -> OperationMeasure:
    [found] = measure_document(SCHEMA, parse(document))
    return found


@pytest.mark.parametrize(
    ("document", "cost"),
    [
        # deliveries + nodes, then each of 10 deliveries and its id
        (TEN_IDS, 1 + 1 + 10 * (1 + 1)),
        # + pageInfo and hasNextPage once; per edge: the edge, cursor, node, id
        (TEN_EDGES, 1 + 1 + 10 * (1 + 1 + 1 + 1) + 1 + 1),
        (DEFAULT_PAGE, 1 + 1 + 50 * 2),
        (VARIABLE_PAGE, 1 + 1 + 100 * 2),  # a variable may be as large as the cap
        (OVER_THE_CAP, 1 + 1 + 100 * 2),  # the page is capped at 100 anyway
        (ATTEMPTS, 1 + 1 + 10 * 2),
        (EVENT_DELIVERIES, 1 + 1 + 10 * (1 + 1 + 1 + 10 * 2)),
        (TWO_ALIASES, 2 * (1 + 1 + 10 * 2)),
        (VIA_FRAGMENT, 1 + 1 + 10 * 2),  # fragments count as if written in place
        (INTROSPECTION, 0),  # development only, and not an abuse vector there
    ],
)
def test_the_cost_multiplies_page_sizes_through_nested_lists(document: str, cost: int) -> None:
    assert measure(document).cost == cost


ONE_DELIVERYS_BODIES = "{ delivery(id: 1) { attempts { request { body } } } }"
A_PAGE_OF_BODIES = "{ deliveries(first: 100) { nodes { attempts { request { body } } } } }"


def test_an_attempts_request_body_counts_as_many_fields_as_it_may_be_large() -> None:
    # attempts (1) + 10 x (the attempt, request 1 + body 500)
    assert measure(ONE_DELIVERYS_BODIES).cost == 1 + 1 + 10 * (1 + 1 + 400)
    assert measure(ONE_DELIVERYS_BODIES).cost <= MAX_COST
    # 1,000 copies of a payload of up to 256 KiB: refused before anything is read
    assert measure(A_PAGE_OF_BODIES).cost > MAX_COST


def test_a_list_without_first_outside_a_connection_counts_ten_items() -> None:
    assert UNPAGED_LENGTH == 10  # the figures above and the README say so


def test_the_issues_nested_query_is_over_the_limit_and_a_full_page_is_not() -> None:
    nested = measure(NESTED_ALIASED)
    assert nested.cost > 15 * 100**3  # the 15,000,000 deliveries of the issue, and their ids
    assert nested.cost > MAX_COST
    assert measure(FULL_PAGE).cost <= MAX_COST


def test_depth_ignores_fragments_and_introspection_and_aliases_count_every_copy() -> None:
    assert measure(TEN_EDGES).depth == 3
    assert measure(VIA_FRAGMENT).depth == 2
    assert measure(INTROSPECTION).depth == 0
    assert measure(TWO_ALIASES).aliases == 2
    aliased_bomb = measure(bomb(10, field="x: __typename"))
    assert aliased_bomb.aliases == 2**10


def test_a_fragment_bomb_is_measured_once_per_fragment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a count of the selection sets the measure walks
    walked: list[object] = []
    original = limits._Walker.selection_set

    def counting(self: Any, selection_set: Any, parent: Any) -> Any:
        walked.append(selection_set)
        return original(self, selection_set, parent)

    monkeypatch.setattr(limits._Walker, "selection_set", counting)
    # When a 40-fragment bomb (2^40 copies of __typename) is measured
    found = measure(bomb(40))
    # Then each fragment and the operation were walked once, and every copy counted
    assert len(walked) == 41 + 1
    assert found.cost == 2**40
    assert found.depth == 0


def test_cyclic_fragments_end_the_walk() -> None:
    # Validation reports the cycle (NoFragmentCycles); the measure must not loop on it.
    found = measure(CYCLE)
    assert found.cost >= 1


def test_a_chain_of_fragments_as_long_as_the_document_allows_does_not_exhaust_the_stack() -> None:
    chain = " ".join(f"fragment F{n} on Query {{ ...F{n + 1} }}" for n in range(3000))
    found = measure(f"{{ ...F0 }} {chain} fragment F3000 on Query {{ __typename }}")
    assert found.cost == 1


def test_every_graphql_example_of_the_readme_is_within_the_limits() -> None:
    blocks = re.findall(r"```graphql\n(.*?)```", README.read_text(), re.DOTALL)
    assert blocks
    for block in blocks:
        for found in measure_document(SCHEMA, parse(block)):
            assert found.cost <= MAX_COST, block
            assert found.depth <= MAX_DEPTH, block
            assert found.aliases <= MAX_ALIASES, block


async def test_an_operation_over_the_cost_limit_is_refused_with_its_cost_and_the_limit() -> None:
    result = await build_schema().execute(NESTED_ALIASED)

    assert result.data is None
    assert result.errors is not None
    [error] = result.errors
    cost = measure(NESTED_ALIASED).cost
    assert error.extensions == {"code": COST_CODE, "cost": cost, "limit": MAX_COST}
    assert f"up to {cost} fields" in error.message
    assert f"limit of {MAX_COST}" in error.message


async def test_the_limit_is_the_schemas() -> None:
    # 2^6 and 2^7 copies of __typename, under and over a limit of 100
    assert (await build_schema(max_cost=100).execute(bomb(6))).errors is None
    refused = await build_schema(max_cost=100).execute(bomb(7))
    assert refused.errors is not None
    assert [error.extensions for error in refused.errors] == [
        {"code": COST_CODE, "cost": 128, "limit": 100}
    ]


async def test_a_fragment_bomb_is_refused_for_its_cost() -> None:
    result = await build_schema().execute(bomb(40))

    assert result.errors is not None
    [error] = result.errors
    assert error.extensions is not None
    assert error.extensions["code"] == COST_CODE
    assert error.extensions["cost"] == 2**40


async def test_a_document_over_a_limit_is_never_kept_and_refused_every_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a record of the documents the cache keeps
    kept: list[str] = []
    put = DocumentCache.put

    def recording(self: DocumentCache, query: str, document: Any) -> None:
        kept.append(query)
        put(self, query, document)

    monkeypatch.setattr(DocumentCache, "put", recording)
    schema = build_schema()
    # When the same bomb comes twice, and a valid document once
    results = [await schema.execute(bomb(30)) for _ in range(2)]
    assert (await schema.execute("{ __typename }")).errors is None
    # Then the bomb was refused both times, and only the valid document was kept
    for result in results:
        assert result.errors is not None
        assert [error.extensions for error in result.errors] == [
            {"code": COST_CODE, "cost": 2**30, "limit": MAX_COST}
        ]
    assert kept == ["{ __typename }"]


async def test_many_copies_of_one_field_are_refused_before_their_pairwise_comparison() -> None:
    # graphql-core compares fields of the same response name pairwise, within a budget:
    # ours stops 400 copies of `viewer { role }` (160,000 pairs) early.
    copies = "{ " + "viewer { role } " * 400 + "}"
    result = await build_schema().execute(copies)

    assert result.errors is not None
    assert [error.message for error in result.errors] == ["Validation aborted."]
    assert overlapping_fields_can_be_merged.MAX_COMPLEXITY_BUDGET == OVERLAP_BUDGET


async def test_a_hundred_copies_of_one_field_are_still_judged() -> None:
    copies = "{ " + "viewer { role } " * 100 + "}"
    result = await build_schema().execute(copies)

    assert result.errors is not None
    assert "Validation aborted." not in [error.message for error in result.errors]


def nested(depth: int) -> str:
    """`delivery { event { deliveries { event ... { id } } } }`: ``depth`` levels of selection."""
    fields = ["delivery(id: 1)"] + ["event" if n % 2 else "deliveries" for n in range(1, depth)]
    return "{ " + " { ".join(fields) + " { id" + " }" * depth + " }"


@pytest.mark.parametrize(("depth", "refused"), [(MAX_DEPTH, False), (MAX_DEPTH + 1, True)])
async def test_the_depth_limit_is_inclusive(depth: int, refused: bool) -> None:
    assert measure(nested(depth)).depth == depth
    errors = (await build_schema().execute(nested(depth))).errors or []
    codes = [error.extensions.get("code") for error in errors if error.extensions]
    assert ("QUERY_TOO_DEEP" in codes) is refused
