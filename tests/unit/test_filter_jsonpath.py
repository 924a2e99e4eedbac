"""Compiling content filters to jsonpath: the predicate text the fan-out runs.

Whether PostgreSQL evaluates it as the Python side does is the agreement test's job
(tests/integration/test_filter_agreement.py); these pin the shapes and the quoting.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.core.filter_jsonpath import filter_jsonpath
from app.core.payload_filter import parse_filter


def compiled(document: dict[str, Any]) -> str:
    tree, errors = parse_filter(("filter",), document)
    assert tree is not None, errors
    return filter_jsonpath(tree)


def test_the_planomatic_filters() -> None:
    assert compiled({"order_status": "notified"}) == (
        'lax exists($."order_status" ? (@.type() == "string" && @ == "notified"))'
    )
    assert compiled({"order_status": {"$in": ["notified", "completed"]}}) == (
        'lax exists($."order_status" ? '
        '((@.type() == "string" && (@ == "notified" || @ == "completed"))))'
    )


def test_negations_are_the_negated_positive_forms() -> None:
    assert compiled({"a": {"$ne": None}}) == 'lax !(exists($."a" ? (@.type() == "null")))'
    assert compiled({"a": {"$exists": False}}) == 'lax !(exists($."a"))'
    assert compiled({"a": {"$nin": [1, "x"]}}) == (
        'lax !(exists($."a" ? ((@.type() == "number" && (@ == 1)) || '
        '(@.type() == "string" && (@ == "x")))))'
    )


def test_each_comparison_names_its_type() -> None:
    assert compiled({"a.b": {"$gte": 1.5}}) == (
        'lax exists($."a"."b" ? (@.type() == "number" && @ >= 1.5))'
    )
    assert compiled({"a": True}) == 'lax exists($."a" ? (@.type() == "boolean" && @ == true))'


def test_logic_and_the_empty_filter() -> None:
    assert compiled({}) == "lax exists($)"
    assert compiled({"$or": [{"a": 1}, {}], "$not": {"b": {"$exists": True}}}) == (
        'lax ((exists($."a" ? (@.type() == "number" && @ == 1)) || exists($)) && !(exists($."b")))'
    )


@pytest.mark.parametrize(
    "text", ['quote"', "back\\slash", "ctrl\n\t\x01", "é名😀", 'x") || exists($', "\u2028"]
)
def test_keys_and_strings_are_json_literals_with_nothing_left_to_interpret(text: str) -> None:
    literal = json.dumps(text, ensure_ascii=True)

    path = compiled({text: text})

    assert path == f'lax exists($.{literal} ? (@.type() == "string" && @ == {literal}))'
    assert path.isascii()


def test_numbers_keep_their_decimal_value() -> None:
    assert compiled({"n": 1e23}).endswith("@ == 1e+23))")
    assert compiled({"n": 10**30}).endswith(f"@ == {10**30}))")
    assert compiled({"n": -0.5}).endswith("@ == -0.5))")
