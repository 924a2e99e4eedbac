"""Parsing content filters: the tree the evaluators share, and every refusal at its place."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.core.errors import JsonKey, UserErrorCode
from app.core.payload_filter import (
    MAX_FILTER_BYTES,
    MAX_FILTER_DEPTH,
    MAX_FILTER_NODES,
    AllOf,
    AnyOf,
    Condition,
    Not,
    parse_filter,
)

FIELD = ("filter",)


def parsed(document: Any) -> AllOf:
    tree, errors = parse_filter(FIELD, document)
    assert errors == []
    assert tree is not None
    return tree


def refusals(document: Any) -> list[tuple[list[str | int], UserErrorCode]]:
    tree, errors = parse_filter(FIELD, document)
    assert tree is None
    return [(list(error.field), error.code) for error in errors]


def nested_not(levels: int) -> dict[str, Any]:
    document: dict[str, Any] = {"order_status": "notified"}
    for _ in range(levels):
        document = {"$not": document}
    return document


# --- what a filter means ---------------------------------------------------------------


def test_a_scalar_is_equality_on_a_dotted_path() -> None:
    tree = parsed({"order_status": "notified", "property_info.address.city": "Denver"})

    assert tree == AllOf(
        (),
        (
            Condition(("order_status",), ("order_status",), "$eq", "notified"),
            Condition(
                ("property_info.address.city",),
                ("property_info", "address", "city"),
                "$eq",
                "Denver",
            ),
        ),
    )


def test_an_operator_object_gives_one_condition_per_operator() -> None:
    tree = parsed({"order_id": {"$gte": 10, "$lt": 20}, "tags": {"$in": ["a", 1, None, True]}})

    assert tree.parts == (
        Condition(("order_id", "$gte"), ("order_id",), "$gte", 10),
        Condition(("order_id", "$lt"), ("order_id",), "$lt", 20),
        Condition(("tags", "$in"), ("tags",), "$in", ("a", 1, None, True)),
    )


def test_and_or_not_nest_filters() -> None:
    tree = parsed({"$or": [{"a": 1}, {"$not": {"b": {"$exists": True}}}], "$and": [{"c": None}]})

    assert tree.parts == (
        AnyOf(
            ("$or",),
            (
                AllOf(("$or", 0), (Condition(("$or", 0, "a"), ("a",), "$eq", 1),)),
                AllOf(
                    ("$or", 1),
                    (
                        Not(
                            ("$or", 1, "$not"),
                            AllOf(
                                ("$or", 1, "$not"),
                                (
                                    Condition(
                                        ("$or", 1, "$not", "b", "$exists"), ("b",), "$exists", True
                                    ),
                                ),
                            ),
                        ),
                    ),
                ),
            ),
        ),
        AllOf(
            ("$and",), (AllOf(("$and", 0), (Condition(("$and", 0, "c"), ("c",), "$eq", None),)),)
        ),
    )


def test_an_empty_filter_has_no_conditions() -> None:
    assert parsed({}) == AllOf((), ())


@pytest.mark.parametrize(
    "key", ['quote"d', "back\\slash", "a.$dollar", "ünïcödé.名前", "emoji😀", "sp ace", "'"]
)
def test_any_storable_key_is_a_field_path(key: str) -> None:
    [condition] = parsed({key: 1}).parts

    assert isinstance(condition, Condition)
    assert condition.field == tuple(key.split("."))


def test_the_filter_may_be_as_large_as_the_limits() -> None:
    # Exactly MAX_FILTER_NODES values: the object and its entries
    assert len(parsed({f"k{index}": index for index in range(MAX_FILTER_NODES - 1)}).parts) == 99
    assert parsed(nested_not(MAX_FILTER_DEPTH - 1))
    assert parsed({"a": "x" * (MAX_FILTER_BYTES - len('{"a":""}'))})


# --- refusals, each at its place -------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({"order_status": {"$regex": "^n"}}, ["order_status", "$regex"]),
        ({"$where": "1"}, ["$where"]),
        ({"$in": ["x"]}, ["$in"]),
        ({"a": {"$and": [{"b": 1}]}}, ["a", "$and"]),
    ],
)
def test_an_unknown_or_misplaced_operator_is_refused_where_it_is(
    document: Any, where: list[str]
) -> None:
    assert refusals(document) == [(["filter", *where], UserErrorCode.INVALID)]


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({"order_status": {"$in": "notified"}}, ["order_status", "$in"]),
        ({"order_status": {"$in": []}}, ["order_status", "$in"]),
        ({"order_status": {"$nin": ["a", {"b": 1}]}}, ["order_status", "$nin", 1]),
        ({"order_status": {"$in": ["a", ["b"]]}}, ["order_status", "$in", 1]),
        ({"a": {"$eq": [1]}}, ["a", "$eq"]),
        ({"a": {"$ne": {"b": 1}}}, ["a", "$ne"]),
        ({"a": {"$exists": 1}}, ["a", "$exists"]),
        ({"a": {"$exists": "yes"}}, ["a", "$exists"]),
        ({"a": {"$gt": True}}, ["a", "$gt"]),
        ({"a": {"$lte": None}}, ["a", "$lte"]),
        ({"a": {"$lt": [1]}}, ["a", "$lt"]),
        ({"$and": []}, ["$and"]),
        ({"$or": {"a": 1}}, ["$or"]),
        ({"$or": [{"a": 1}, "b"]}, ["$or", 1]),
        ({"$not": [{"a": 1}]}, ["$not"]),
        ({"a": [1, 2]}, ["a"]),
        ({"a": {"b": 1}}, ["a"]),
        ({"a": {}}, ["a"]),
    ],
)
def test_a_wrong_operand_is_refused_where_it_is(document: Any, where: list[str | int]) -> None:
    assert refusals(document) == [(["filter", *where], UserErrorCode.INVALID)]


def test_operators_mixed_with_field_names_are_refused() -> None:
    assert refusals({"client": {"$exists": True, "email": "x@example.com"}}) == [
        (["filter", "client"], UserErrorCode.INVALID)
    ]


@pytest.mark.parametrize("key", ["", ".a", "a.", "a..b", "."])
def test_a_path_with_an_empty_segment_is_refused(key: str) -> None:
    assert refusals({key: 1}) == [(["filter", key], UserErrorCode.INVALID)]


@pytest.mark.parametrize(
    "document",
    [{"a\x00b": 1}, {"a": "b\x00"}, {"a": {"$in": ["\ud800"]}}, {"a": float("nan")}],
)
def test_what_no_payload_can_hold_is_refused(document: Any) -> None:
    [(where, code)] = refusals(document)

    assert where[0] == "filter" and code in (UserErrorCode.INVALID,)


@pytest.mark.parametrize("document", ["order_status", ["a"], None, 1, True])
def test_a_filter_is_an_object(document: Any) -> None:
    assert refusals(document) == [(["filter"], UserErrorCode.INVALID)]


def test_every_error_is_reported_at_once() -> None:
    assert refusals({"a": {"$in": []}, "$foo": 1, "b": {"$gt": False}}) == [
        (["filter", "a", "$in"], UserErrorCode.INVALID),
        (["filter", "$foo"], UserErrorCode.INVALID),
        (["filter", "b", "$gt"], UserErrorCode.INVALID),
    ]


def test_keys_in_error_paths_are_reported_as_written() -> None:
    _, [error] = parse_filter(FIELD, {"order_status": {"$in": "x"}})

    assert all(isinstance(part, JsonKey) for part in error.field[1:])


def test_too_deep_is_refused_at_the_filter_that_is_too_deep() -> None:
    assert refusals(nested_not(MAX_FILTER_DEPTH)) == [
        (["filter", *["$not"] * MAX_FILTER_DEPTH], UserErrorCode.TOO_LARGE)
    ]


def test_too_many_values_or_bytes_are_refused() -> None:
    many = {f"k{index}": index for index in range(MAX_FILTER_NODES)}
    long = {"a": "x" * MAX_FILTER_BYTES}

    assert refusals(many) == [(["filter"], UserErrorCode.TOO_LARGE)]
    assert refusals(long) == [(["filter"], UserErrorCode.TOO_LARGE)]
    assert refusals({"a": {"$in": list(range(MAX_FILTER_NODES))}}) == [
        (["filter"], UserErrorCode.TOO_LARGE)
    ]


def test_a_hostile_document_is_refused_without_recursion_and_in_bounded_time() -> None:
    # Given JSON nested far beyond any recursion limit, and a very wide one
    deep: Any = 1
    for _ in range(100_000):
        deep = {"$not": deep} if isinstance(deep, dict) else {"$and": [deep]}
        deep = [deep]
    wide = {"$or": [{"a": index} for index in range(1_000_000)]}

    # When each is parsed
    started = time.perf_counter()
    deep_refusal = refusals({"$and": deep})
    wide_refusal = refusals(wide)

    # Then both are refused as too large, quickly
    assert time.perf_counter() - started < 1.0
    assert deep_refusal[0][1] == UserErrorCode.TOO_LARGE
    assert wide_refusal == [(["filter"], UserErrorCode.TOO_LARGE)]
