"""The Python side of content filters: what matches, and the reasons given for it.

The rules here are the jsonpath's (tests/integration/test_filter_agreement.py checks the
two agree on random filters and payloads); these cases pin each rule down by name.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.core.filter_verdict import Line, found_values, judge
from app.core.payload_filter import parse_filter
from tests.payloads import order_status_payload

NOTIFIED_OR_COMPLETED = {"order_status": {"$in": ["notified", "completed"]}}


def matches(document: dict[str, Any], payload: dict[str, Any]) -> bool:
    tree, errors = parse_filter(("filter",), document)
    assert tree is not None, errors
    return judge(tree, payload).matched


def reasons(document: dict[str, Any], payload: dict[str, Any]) -> tuple[str, ...]:
    tree, errors = parse_filter(("filter",), document)
    assert tree is not None, errors
    return judge(tree, payload).reasons


# --- the PlanOmatic cases ----------------------------------------------------------------


def test_only_notified_orders() -> None:
    only_notified = {"order_status": "notified"}

    assert matches(only_notified, order_status_payload(order_status="notified"))
    assert not matches(only_notified, order_status_payload(order_status="scheduled"))


def test_a_mismatch_says_which_clause_failed_and_why() -> None:
    tree, _ = parse_filter(("filter",), NOTIFIED_OR_COMPLETED)
    assert tree is not None

    verdict = judge(tree, order_status_payload(order_status="scheduled"))

    assert not verdict.matched
    assert verdict.mismatches == (
        Line(
            ("order_status", "$in"),
            'order_status is "scheduled", not one of ["notified", "completed"]',
        ),
    )
    assert verdict.reasons == ('order_status is "scheduled", not one of ["notified", "completed"]',)


def test_a_match_says_why_and_has_no_mismatches() -> None:
    tree, _ = parse_filter(("filter",), {**NOTIFIED_OR_COMPLETED, "order_id": {"$gt": 40}})
    assert tree is not None

    verdict = judge(tree, order_status_payload(order_status="completed", order_id=41))

    assert verdict.matched and verdict.mismatches == ()
    assert verdict.reasons == (
        'order_status is "completed", one of ["notified", "completed"]',
        "order_id is 41, greater than 40",
    )


def test_only_the_failing_clauses_are_mismatches() -> None:
    tree, _ = parse_filter(("filter",), {"order_status": "ordered", "client.email": "x@y.example"})
    assert tree is not None

    verdict = judge(tree, order_status_payload())

    assert [line.where for line in verdict.mismatches] == [("client.email",)]
    assert verdict.reasons == ('client.email is "casey.sample@example.com", not "x@y.example"',)


def test_nested_clauses_are_explained_as_a_whole() -> None:
    document = {"$or": [{"order_status": "notified"}, {"order_id": {"$lt": 10}}]}

    assert reasons(document, order_status_payload()) == (
        'none of the $or filters matched: [1] order_status is "ordered", not "notified"; '
        "[2] order_id is 41, not less than 10",
    )
    assert reasons({"$not": {"order_status": "ordered"}}, order_status_payload()) == (
        '$not: the filter it negates matched (order_status is "ordered")',
    )


def test_a_type_mismatch_is_named() -> None:
    assert reasons({"order_id": "41"}, order_status_payload()) == (
        'order_id is 41, not "41" (a number never compares with a string)',
    )


# --- the rules ---------------------------------------------------------------------------

PAYLOAD: dict[str, Any] = {
    "n": 5,
    "f": 2.5,
    "s": "m",
    "t": True,
    "z": None,
    "tags": ["a", "b"],
    "nested": [["a"]],
    "empty": [],
    "items": [{"k": 1}, {"k": 2}, {"other": 3}, [{"k": 9}]],
    "obj": {"deep": {"er": "x"}},
}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        # equality is typed: numbers as decimals, never a string, a boolean or null
        ({"n": 5}, True),
        ({"n": 5.0}, True),
        ({"n": "5"}, False),
        ({"t": 1}, False),
        ({"t": True}, True),
        ({"z": None}, True),
        ({"n": None}, False),
        ({"f": 2.5}, True),
        # missing fields: only $ne, $nin and $exists: false hold
        ({"missing": None}, False),
        ({"missing": {"$ne": 1}}, True),
        ({"missing": {"$nin": [1]}}, True),
        ({"missing": {"$exists": False}}, True),
        ({"missing": {"$exists": True}}, False),
        ({"missing": {"$gt": 0}}, False),
        ({"z": {"$exists": True}}, True),
        # order: numbers with numbers, strings with strings (by code point)
        ({"n": {"$gt": 4}}, True),
        ({"n": {"$gte": 5, "$lte": 5}}, True),
        ({"n": {"$lt": "9"}}, False),
        ({"s": {"$gt": "a", "$lt": "n"}}, True),
        ({"s": {"$gt": "Z"}}, True),
        ({"s": {"$gt": 1}}, False),
        ({"t": {"$gt": 0}}, False),
        # an array at the end: any element; an array in it is not looked into
        ({"tags": "a"}, True),
        ({"tags": {"$in": ["x", "b"]}}, True),
        ({"tags": {"$ne": "a"}}, False),
        ({"tags": {"$nin": ["x"]}}, True),
        ({"nested": "a"}, False),
        ({"empty": {"$exists": True}}, True),
        ({"empty": {"$in": ["a"]}}, False),
        # an array on the way: its objects' fields, one level
        ({"items.k": 2}, True),
        ({"items.k": 9}, False),
        ({"items.k": {"$gt": 1}}, True),
        ({"items.other": {"$exists": True}}, True),
        # a path through a scalar finds nothing; a numeric segment is a key, not an index
        ({"n.x": {"$exists": True}}, False),
        ({"tags.0": "a"}, False),
        ({"obj.deep.er": "x"}, True),
        # objects are never values to compare
        ({"obj": {"$ne": "x"}}, True),
        ({"obj.deep": {"$exists": True}}, True),
        # logic
        ({"$or": [{"n": 1}, {"s": "m"}]}, True),
        ({"$and": [{"n": 5}, {"s": "x"}]}, False),
        ({"$not": {"n": 1}}, True),
        ({}, True),
    ],
)
def test_the_rules(document: dict[str, Any], expected: bool) -> None:
    assert matches(document, PAYLOAD) is expected


def test_a_float_compares_as_the_decimal_it_is_written_as() -> None:
    # 1e23 as a float is 99999999999999991611392 in binary; as JSON (and in PostgreSQL's
    # numeric) it is 10**23.
    assert matches({"n": 1e23}, {"n": 10**23})
    assert not matches({"n": 1e23}, {"n": 99999999999999991611392})


def test_the_values_found_through_arrays() -> None:
    assert found_values(PAYLOAD, ("items", "k")) == [1, 2]
    assert found_values(PAYLOAD, ("tags",)) == [["a", "b"]]
    assert found_values(PAYLOAD, ("s", "x")) == []


def test_long_values_are_shortened_in_reasons() -> None:
    [reason] = reasons({"s": "short"}, {"s": "x" * 500})

    assert len(reason) < 120 and reason.endswith('…, not "short"')
