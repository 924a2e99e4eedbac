"""A parsed content filter evaluated in Python, with the reasons: why a payload matches,
or which clauses failed and why.

The semantics are exactly those of the jsonpath the fan-out runs (the rules are in
``app/core/filter_jsonpath.py``); the explanation is what this side adds. Numbers
compare as decimals (as PostgreSQL's ``numeric`` does: ``1`` equals ``1.0``, and a float
is the decimal it is written as), strings by code point.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.core.payload_filter import (
    AllOf,
    AnyOf,
    Clause,
    Condition,
    Scalar,
    Where,
    json_kind,
    operand_list,
    operand_scalar,
)

_SHOWN_CHARACTERS = 80
_ORDER_FUNCTIONS = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
_ORDER_WORDS = {"$gt": "greater than", "$gte": "at least", "$lt": "less than", "$lte": "at most"}


@dataclass(frozen=True)
class Line:
    """One clause's part in the outcome: where it is in the filter, and what it found."""

    where: Where
    reason: str


@dataclass(frozen=True)
class Verdict:
    """Whether a payload passes a filter; ``reasons`` say why (the clauses that decided
    it), ``mismatches`` are those lines when it does not match."""

    matched: bool
    reasons: tuple[str, ...]
    mismatches: tuple[Line, ...]


@dataclass(frozen=True)
class _Outcome:
    held: bool
    # Why it held (every part's line) or why not (the failing parts' lines).
    lines: tuple[Line, ...]


def judge(parsed: AllOf, payload: dict[str, Any]) -> Verdict:
    """Evaluate ``parsed`` on ``payload`` (an event's ``data``)."""
    outcome = _judge(parsed, payload)
    reasons = tuple(line.reason for line in outcome.lines) or (
        "The filter has no conditions: every event matches.",
    )
    return Verdict(outcome.held, reasons, () if outcome.held else outcome.lines)


def _judge(clause: Clause, payload: dict[str, Any]) -> _Outcome:
    if isinstance(clause, Condition):
        held, reason = _condition(clause, payload)
        return _Outcome(held, (Line(clause.where, reason),))
    if isinstance(clause, AllOf):
        outcomes = [_judge(part, payload) for part in clause.parts]
        held = all(outcome.held for outcome in outcomes)
        return _Outcome(
            held,
            tuple(line for outcome in outcomes if outcome.held == held for line in outcome.lines),
        )
    if isinstance(clause, AnyOf):
        outcomes = [_judge(part, payload) for part in clause.parts]
        chosen = next((outcome for outcome in outcomes if outcome.held), None)
        if chosen is not None:
            return _Outcome(True, (Line(clause.where, f"$or: {_summary(chosen)}"),))
        alternatives = "; ".join(
            f"[{index}] {_summary(outcome)}" for index, outcome in enumerate(outcomes, 1)
        )
        return _Outcome(
            False, (Line(clause.where, f"none of the $or filters matched: {alternatives}"),)
        )
    negated = _judge(clause.part, payload)
    if negated.held:
        reason = f"$not: the filter it negates matched ({_summary(negated)})"
    else:
        reason = f"$not: the filter it negates did not match ({_summary(negated)})"
    return _Outcome(not negated.held, (Line(clause.where, reason),))


def _summary(outcome: _Outcome) -> str:
    return " and ".join(line.reason for line in outcome.lines) or "no conditions"


def found_values(payload: dict[str, Any], field: tuple[str, ...]) -> list[Any]:
    """The values at a field path: an array on the way is looked into, one level (an
    array directly inside it is not); a missing key or a scalar on the way finds nothing."""
    found: list[Any] = [payload]
    for segment in field:
        following: list[Any] = []
        for value in found:
            if isinstance(value, dict):
                if segment in value:
                    following.append(value[segment])
            elif isinstance(value, list):
                following.extend(
                    item[segment] for item in value if isinstance(item, dict) and segment in item
                )
        found = following
    return found


def _tested(found: list[Any]) -> Iterator[Any]:
    """What a value condition tests: each value found, or an array's elements instead."""
    for value in found:
        if isinstance(value, list):
            yield from value
        else:
            yield value


def _condition(condition: Condition, payload: dict[str, Any]) -> tuple[bool, str]:
    found = found_values(payload, condition.field)
    actual = _actual(condition.dotted, found)
    name = condition.operator
    if name == "$exists":
        exists = bool(found)
        wanted = operand_scalar(condition)
        if exists:
            return bool(wanted), f"{actual}, present" if wanted else f"{actual}, and must be absent"
        return not wanted, actual
    if name in ("$in", "$nin"):
        values = operand_list(condition)
        hit = any(_equal(value, wanted) for value in _tested(found) for wanted in values)
        listed = _show(list(values))
        if name == "$in":
            return hit, f"{actual}, one of {listed}" if hit else f"{actual}, not one of {listed}"
        return not hit, f"{actual}, one of the excluded {listed}" if hit else (
            f"{actual}, none of {listed}"
        )
    wanted_value = operand_scalar(condition)
    if name in ("$eq", "$ne"):
        hit = any(_equal(value, wanted_value) for value in _tested(found))
        shown = _show(wanted_value)
        if name == "$eq":
            if hit:
                return True, actual if _single_scalar(found) else f"{actual}, which has {shown}"
            return False, f"{actual}, not {shown}{_type_note(found, wanted_value)}"
        return not hit, f"{actual}, which must not be {shown}" if hit else f"{actual}, not {shown}"
    words = _ORDER_WORDS[name]
    hit = any(_ordered(name, value, wanted_value) for value in _tested(found))
    shown = _show(wanted_value)
    if hit:
        return True, f"{actual}, {words} {shown}"
    return False, f"{actual}, not {words} {shown}{_type_note(found, wanted_value)}"


def _number(value: int | float) -> Decimal:
    # A float as the decimal it is written as in JSON (its repr), not its binary value.
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def _equal(value: Any, wanted: Scalar) -> bool:
    if json_kind(value) != json_kind(wanted):
        return False
    if isinstance(value, int | float) and isinstance(wanted, int | float):
        return _number(value) == _number(wanted)
    return bool(value == wanted)


def _ordered(name: str, value: Any, wanted: Scalar) -> bool:
    if json_kind(value) != json_kind(wanted):
        return False
    compare = _ORDER_FUNCTIONS[name]
    if isinstance(value, int | float) and isinstance(wanted, int | float):
        return bool(compare(_number(value), _number(wanted)))
    if isinstance(value, str) and isinstance(wanted, str):
        return bool(compare(value, wanted))
    return False


def _actual(dotted: str, found: list[Any]) -> str:
    if not found:
        return f"{dotted} is missing"
    if len(found) == 1:
        return f"{dotted} is {_show(found[0])}"
    return f"{dotted} is {_show(found)} (one value per array element)"


def _single_scalar(found: list[Any]) -> bool:
    return len(found) == 1 and not isinstance(found[0], list | dict)


def _type_note(found: list[Any], wanted: Scalar) -> str:
    """Why equal-looking values differ: a number never equals a string, and so on."""
    if not _single_scalar(found) or found[0] is None or wanted is None:
        return ""
    kind, wanted_kind = json_kind(found[0]), json_kind(wanted)
    if kind == wanted_kind:
        return ""
    return f" (a {kind} never compares with a {wanted_kind})"


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    if len(text) <= _SHOWN_CHARACTERS:
        return text
    return text[: _SHOWN_CHARACTERS - 1] + "…"
