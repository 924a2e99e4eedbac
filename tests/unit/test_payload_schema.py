"""Payload schemas, pure: an operator's schema checked, payloads' violations in the API's
words, JSON pointers, and the status values a schema lists."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.core.payload_schema import (
    DETAILED_REPORT_BYTES,
    MISSING,
    StatusValue,
    compile_schema,
    parse_pointer,
    pointer_text,
    resolve,
    schema_problems,
    shown,
    status_values,
    subject_from,
)
from tests.catalogue import order_status_sample, order_status_schema
from tests.unit.test_schema_expansion import doubling

ORDER_STATUS = compile_schema(order_status_schema())


def messages(payload: dict[str, Any], limit: int = 20) -> list[str]:
    report = ORDER_STATUS.check(payload, 0, limit)
    return [violation.message for violation in report.violations]


# -- pointers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", ()),
        ("/order_id", ("order_id",)),
        ("/client/email", ("client", "email")),
        ("/a~1b/c~0d", ("a/b", "c~d")),
        ("/appointments/0", ("appointments", "0")),
        ("/", ("",)),
    ],
)
def test_a_pointer_parses_to_its_segments_and_prints_back(
    text: str, segments: tuple[str, ...]
) -> None:
    assert parse_pointer(text) == segments
    assert pointer_text(segments) == (text or "/")


@pytest.mark.parametrize("text", ["order_id", "/a~2", "/a~", "#/order_id"])
def test_a_malformed_pointer_is_none(text: str) -> None:
    assert parse_pointer(text) is None


def test_resolve_finds_values_and_tells_missing_from_null() -> None:
    document = {"a": {"b": [10, {"c": None}]}}

    assert resolve(document, ("a", "b", "0")) == 10
    assert resolve(document, ("a", "b", 1, "c")) is None
    assert resolve(document, ("a", "b", "2")) is MISSING
    assert resolve(document, ("a", "b", "01")) is MISSING  # no leading zeros
    assert resolve(document, ("a", "x")) is MISSING
    assert resolve(document, ("a", "b", "0", "deeper")) is MISSING


@pytest.mark.parametrize(
    ("value", "subject"),
    [
        (332818, "332818"),
        ("ord-1", "ord-1"),
        # JSON Schema's integer is a number with no fraction, so 332818.0 passes the
        # schema and must name the same order as 332818 (a retry compares subjects).
        (332818.0, "332818"),
        (-0.0, "0"),
        (1e20, "100000000000000000000"),
        (True, None),
        (1.5, None),
        (None, None),
        ({}, None),
    ],
)
def test_a_subject_is_a_string_or_an_integers_digits(value: Any, subject: str | None) -> None:
    assert subject_from(value) == subject


# -- violations ---------------------------------------------------------------------------


def test_the_sample_matches_its_schema() -> None:
    assert ORDER_STATUS.check(order_status_sample(), 0, 20).valid


def test_each_violation_names_its_pointer_and_what_was_expected() -> None:
    payload = order_status_sample() | {
        "order_status": "shipped",
        "request_id": "x" * 100,
        "links": [],
    }
    del payload["order_id"]
    payload["client"]["email"] = 3

    report = ORDER_STATUS.check(payload, 0, 20)

    assert {violation.pointer: violation.message for violation in report.violations} == {
        (): '/: missing required field "order_id"',
        ("request_id",): f'/request_id: expected an integer, got "{"x" * 40}..."',
        ("order_status",): '/order_status: expected one of "ordered", "scheduled", '
        '"assembly", "notified", "completed", "hold", "cancelled", '
        '"submitted_cancel_onsite", "pending_appointment", "ready_to_schedule", '
        '"committed"; got "shipped"',
        ("links",): "/links: expected an object, got an array",
        ("client", "email"): "/client/email: expected a string, got 3",
    }
    assert not report.more


def test_only_the_limit_is_reported_and_more_is_said() -> None:
    payload = order_status_sample() | {"appointments": [1, 2, 3]}

    report = ORDER_STATUS.check(payload, 0, 2)

    assert [violation.pointer for violation in report.violations] == [
        ("appointments", 0),
        ("appointments", 1),
    ]
    assert report.more


def test_a_heavy_schema_lists_only_the_first_violation_of_a_small_payload() -> None:
    # Given a schema that checks every element 2,000 times: a 500-byte payload has
    # 400,000 violations, which the library would gather in full (seconds) to list 20
    heavy = compile_schema(
        {"type": "object", "properties": {"a": {"items": {"allOf": [{"type": "string"}] * 2000}}}}
    )
    started = time.monotonic()

    report = heavy.check({"a": [1] * 200}, 500, 20)

    assert [violation.message for violation in report.violations] == [
        "/a/0: expected a string, got 1"
    ]
    assert report.more
    assert time.monotonic() - started < 0.5


def test_a_recursive_schema_lists_only_the_first_violation() -> None:
    # Each level names the level below twice: listing walks every path, 2**depth of them.
    twice = {"properties": {"x": {"$ref": "#/$defs/level"}}}
    schema = {
        "type": "object",
        "$defs": {"level": {"type": "object", "allOf": [twice, {**twice, "title": "again"}]}},
        "properties": {"x": {"$ref": "#/$defs/level"}},
    }
    payload = node = {}
    for _ in range(18):
        node["x"] = {}
        node = node["x"]
    node["x"] = 5
    started = time.monotonic()

    report = compile_schema(schema).check(payload, 200, 20)

    assert len(report.violations) == 1
    assert report.more
    assert time.monotonic() - started < 0.5


def test_a_large_payload_is_reported_by_its_first_violation_only() -> None:
    payload = order_status_sample() | {"appointments": [1, 2, 3]}

    report = ORDER_STATUS.check(payload, DETAILED_REPORT_BYTES + 1, 20)

    assert [violation.pointer for violation in report.violations] == [("appointments", 0)]
    assert report.more


@pytest.mark.parametrize(
    ("schema", "value", "message"),
    [
        ({"enum": ["a", 1, None]}, "b", '/v: expected one of "a", 1, null; got "b"'),
        ({"const": "a"}, "b", '/v: expected "a", got "b"'),
        ({"anyOf": [{"const": 1}, {"const": 2}]}, 3, "/v: expected one of 1, 2; got 3"),
        ({"type": ["null", "integer"]}, "1", '/v: expected an integer or null, got "1"'),
        ({"format": "date-time"}, "noon", '/v: expected a date-time string, got "noon"'),
        ({"maxLength": 2}, "abc", '/v: "abc" is longer than 2 characters'),
    ],
)
def test_messages_by_kind(schema: dict[str, Any], value: Any, message: str) -> None:
    compiled = compile_schema({"type": "object", "properties": {"v": schema}})

    [violation] = compiled.check({"v": value}, 0, 20).violations

    assert violation.message == message


def test_shown_values_are_short() -> None:
    assert shown({"a": 1}) == "an object"
    assert shown([1]) == "an array"
    assert shown("é" * 50) == '"' + "é" * 40 + '..."'
    assert shown(None) == "null"


# -- an operator's schema ------------------------------------------------------------------


def test_the_order_status_schema_has_no_problems() -> None:
    assert schema_problems(order_status_schema()) == []


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ([], "the schema must be a JSON object"),
        (
            {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"},
            '/$schema: $schema "http://json-schema.org/draft-07/schema#" is not draft 2020-12',
        ),
        (
            {"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}},
            '/properties/a/$ref: $ref "https://example.com/a.json" is not local',
        ),
        (
            {"type": "object", "$defs": {"a": {"$dynamicRef": "other.json#x"}}},
            '/$defs/a/$dynamicRef: $dynamicRef "other.json#x" is not local',
        ),
        (
            {"type": "object", "properties": {"a": {"type": "text"}}},
            "not a valid JSON Schema (draft 2020-12) at /properties/a/type: ",
        ),
        (
            {"type": "object", "properties": {"a": {"minLength": -1}}},
            "not a valid JSON Schema (draft 2020-12) at /properties/a/minLength: -1 is less",
        ),
        ({"type": "array"}, 'the root must say "type": "object"'),
        ({"properties": {}}, 'the root must say "type": "object"'),
        (
            {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}},
            "the schema does not compile: ",
        ),
        # A kilobyte that a validator would walk 2**40 times per payload value.
        (doubling(40), "the schema expands to more than 100,000 subschemas once its $refs"),
        # Patterns use the linear-time engine: no look-around, no back-references.
        (
            {"type": "object", "properties": {"a": {"pattern": "(?<=x)y"}}},
            "the schema does not compile: ",
        ),
    ],
)
def test_a_schema_problem_says_what_and_where(schema: Any, problem: str) -> None:
    problems = schema_problems(schema)

    assert len(problems) == 1, problems
    assert problems[0].startswith(problem), problems


def test_data_and_property_names_that_look_like_keywords_are_not_references() -> None:
    schema = {
        "type": "object",
        "properties": {"$ref": {"type": "string"}, "$schema": {"type": "string"}},
        "examples": [{"$ref": "https://example.com/not-a-reference"}],
    }

    assert schema_problems(schema) == []


# -- statuses ----------------------------------------------------------------------------


def test_statuses_of_order_status_come_with_their_meanings() -> None:
    statuses = status_values(order_status_schema(), ("order_status",))

    assert statuses is not None
    assert statuses[0] == StatusValue("ordered", "The order was placed and awaits scheduling.")
    assert len(statuses) == 11


def test_statuses_follow_references_and_items() -> None:
    schema = {
        "type": "object",
        "properties": {"steps": {"type": "array", "items": {"$ref": "#/$defs/step"}}},
        "$defs": {
            "step": {"type": "object", "properties": {"state": {"$ref": "#/$defs/state"}}},
            "state": {"enum": ["open", "done"]},
        },
    }

    assert status_values(schema, ("steps", "0", "state")) == [
        StatusValue("open", None),
        StatusValue("done", None),
    ]


@pytest.mark.parametrize(
    "field",
    [
        {"type": "string"},
        {"enum": ["a", 1]},
        {"oneOf": [{"const": "a"}, {"type": "string"}]},
        {"enum": []},
    ],
)
def test_no_statuses_where_the_schema_lists_no_string_values(field: dict[str, Any]) -> None:
    schema = {"type": "object", "properties": {"state": field}}

    assert status_values(schema, ("state",)) is None
    assert status_values(schema, ("elsewhere",)) is None
