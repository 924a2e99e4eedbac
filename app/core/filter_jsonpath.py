"""A parsed content filter as the PostgreSQL ``jsonpath`` predicate the fan-out evaluates.

Compiled once, when a subscription is saved; ``fan_out_event`` runs it with
``webhooks_filter_matches`` (migration 0014), which treats anything but ``true`` as no
match. The semantics are those of ``app/core/filter_verdict.py``, clause for clause
(``tests/integration/test_filter_agreement.py`` holds the two together):

- Lax mode: a field path that is missing, or crosses a scalar, finds nothing (no error).
  An array on the way is looked into, one level: ``appointments.duration`` finds each
  appointment's duration. Segments are object keys only, never array indexes.
- A value condition is ``exists(path ? (test))``: it holds when one of the values found
  passes; an array found at the end has its elements tested instead (one level).
- Every test names the JSON type it compares (``@.type() == "string" && @ == "x"``):
  values of different types never compare, and an array or object never equals a
  scalar (lax mode would otherwise unwrap an array once more, and a comparison of
  different types would be unknown, not false).
- ``$ne``, ``$nin`` and ``$exists: false`` are the negations of ``$eq``, ``$in`` and
  ``$exists: true``, so they hold for a missing field.

Keys and strings are written as JSON string literals with every non-ASCII character
escaped, which jsonpath reads back verbatim; numbers as Python writes them, which
jsonpath reads as the same decimal.
"""

from __future__ import annotations

import json
from itertools import groupby

from app.core.payload_filter import (
    AllOf,
    AnyOf,
    Clause,
    Condition,
    Not,
    Scalar,
    json_kind,
    operand_list,
    operand_scalar,
)

_COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def filter_jsonpath(parsed: AllOf) -> str:
    """The jsonpath predicate (text, for a ``::jsonpath`` cast) of a parsed filter."""
    return "lax " + _clause(parsed)


def _clause(clause: Clause) -> str:
    if isinstance(clause, AllOf):
        return _joined(clause.parts, " && ") if clause.parts else "exists($)"
    if isinstance(clause, AnyOf):
        return _joined(clause.parts, " || ")
    if isinstance(clause, Not):
        return f"!({_clause(clause.part)})"
    return _condition(clause)


def _joined(parts: tuple[Clause, ...], operator: str) -> str:
    if len(parts) == 1:
        return _clause(parts[0])
    return "(" + operator.join(_clause(part) for part in parts) + ")"


def _condition(condition: Condition) -> str:
    path = "$" + "".join("." + _string(segment) for segment in condition.field)
    operator = condition.operator
    if operator == "$exists":
        found = f"exists({path})"
        return found if operand_scalar(condition) else f"!({found})"
    if operator in ("$eq", "$ne"):
        test = _equal(operand_scalar(condition))
    elif operator in ("$in", "$nin"):
        test = _one_of(operand_list(condition))
    else:
        value = operand_scalar(condition)
        test = f"{_type_is(value)} && @ {_COMPARISONS[operator]} {_literal(value)}"
    held = f"exists({path} ? ({test}))"
    return f"!({held})" if operator in ("$ne", "$nin") else held


def _equal(value: Scalar) -> str:
    if value is None:
        return _type_is(None)
    return f"{_type_is(value)} && @ == {_literal(value)}"


def _one_of(values: tuple[Scalar, ...]) -> str:
    tests = []
    # One type check per type listed, then its values: values of other types never match.
    for kind, group in groupby(sorted(values, key=json_kind), key=json_kind):
        members = list(group)
        if kind == "null":
            tests.append(_type_is(None))
            continue
        equal = " || ".join(f"@ == {_literal(member)}" for member in members)
        tests.append(f"({_type_is(members[0])} && ({equal}))")
    return " || ".join(tests)


def _type_is(value: Scalar) -> str:
    return f'@.type() == "{json_kind(value)}"'


def _literal(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        # repr of a float is its shortest round-trip form (e.g. 1e+23), and jsonpath reads
        # an exponent; int is exact however long.
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    raise TypeError(f"no jsonpath literal for {value!r}")


def _string(text: str) -> str:
    """A jsonpath string literal: JSON's own escapes (quote, backslash, controls, \\uXXXX
    with surrogate pairs), all of which jsonpath reads; nothing else is left to interpret."""
    return json.dumps(text, ensure_ascii=True)
