"""Client JSON is parsed within bounds: nesting, number size, UTF-8, in linear time."""

from __future__ import annotations

import contextlib
import json
import time

import pytest

from app.web.request_json import MAX_DEPTH, MAX_NUMBER_CHARACTERS, JsonRefused, loads, nesting_depth

MIB = 1024 * 1024


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_json_nested_up_to_the_limit_is_parsed() -> None:
    value = loads(nested(MAX_DEPTH))

    for _ in range(MAX_DEPTH - 1):
        assert isinstance(value, list)
        [value] = value
    assert value == []


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 500, 990, 100_000])
def test_json_nested_deeper_is_refused(levels: int) -> None:
    with pytest.raises(JsonRefused) as refused:
        loads('{"variables": {"x": ' + nested(levels - 2) + "}}")

    assert refused.value.reason == f"JSON nests deeper than {MAX_DEPTH} levels."


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"1", 0),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'{"a": "[[[[{{{{"}', 1),  # brackets in strings do not count
        (b'["\\"[[[", []]', 2),  # nor after an escaped quote
        (b'["\\\\", [[]]]', 3),  # an escaped backslash ends before the quote
        ('["é[", []]'.encode(), 2),
        (b"]]]]", 0),
    ],
)
def test_nesting_depth_counts_structure_only(text: bytes, depth: int) -> None:
    assert nesting_depth(text) == depth


@pytest.mark.parametrize("digits", [MAX_NUMBER_CHARACTERS + 1, 4301, 100_000])
def test_long_integers_are_refused(digits: int) -> None:
    with pytest.raises(JsonRefused, match=f"more than {MAX_NUMBER_CHARACTERS} characters"):
        loads('{"n": ' + "7" * digits + "}")


def test_numbers_up_to_the_limit_are_parsed() -> None:
    integer = "9" * MAX_NUMBER_CHARACTERS
    fraction = "0." + "5" * (MAX_NUMBER_CHARACTERS - 2)

    assert loads(f"[{integer}, {fraction}, -1, 2.5e3]") == [
        int(integer),
        float(fraction),
        -1,
        2500.0,
    ]


@pytest.mark.parametrize("text", ["[1e400]", "[-1e400]", "[NaN]", "[Infinity]", "[-Infinity]"])
def test_numbers_json_cannot_carry_are_refused(text: str) -> None:
    with pytest.raises(JsonRefused):
        loads(text)


@pytest.mark.parametrize("body", [b"\xff\xfe{\x00}\x00", b'{"a": "\xe9"}'])
def test_bytes_that_are_not_utf8_are_refused(body: bytes) -> None:
    with pytest.raises(JsonRefused, match="not UTF-8"):
        loads(body)


@pytest.mark.parametrize("text", ["", "{", '{"a": }', '{"a": 1} x', '"unterminated'])
def test_text_that_is_not_json_is_refused_as_a_decode_error(text: str) -> None:
    with pytest.raises(JsonRefused, match="not valid JSON") as refused:
        loads(text)

    # Strawberry's own handling of unparsable JSON (HTTP 400, websocket 4400) applies.
    assert isinstance(refused.value, json.JSONDecodeError)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * MIB, id="brackets"),
        pytest.param(b"[" + b"[]," * (MIB // 3) + b"[]]", id="siblings"),
        pytest.param(b'"' + b'\\"' * (MIB // 2), id="unterminated-escaped-quotes"),
        pytest.param(b'"' * MIB, id="quotes"),
        pytest.param(json.dumps([""] * (MIB // 3)).encode(), id="short-strings"),
        pytest.param(b"[" + b"1," * (MIB // 2) + b"1]", id="numbers"),
    ],
)
def test_a_hostile_mebibyte_is_judged_in_linear_time(body: bytes) -> None:
    # A quadratic scan of these takes minutes; a linear one a fraction of a second.
    started = time.perf_counter()
    with contextlib.suppress(JsonRefused):
        loads(body)
    assert time.perf_counter() - started < 10.0
