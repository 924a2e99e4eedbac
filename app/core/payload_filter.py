"""Content filters: which events of its webhook a subscription receives, by their payload.

A filter is a JSON object, parsed here into a tree of clauses that the two evaluators
share: ``app/core/filter_jsonpath.py`` compiles it to the PostgreSQL ``jsonpath``
predicate the fan-out runs, ``app/core/filter_verdict.py`` evaluates it in Python to say
why a payload matches or not. The language, as the README documents it:

- The entries of a filter all must hold. A key not starting with ``$`` is a dotted path
  into the payload (``client.email``); its value is a scalar (equality) or an object of
  operators (``$eq $ne $in $nin $exists $gt $gte $lt $lte``).
- ``$and`` and ``$or`` take a non-empty array of filters, ``$not`` one filter.

Parsing refuses anything else with a user error at the offending place, and is linear in
the size of the document: its size is bounded by an iterative pass before the recursive
one, which therefore never recurses deeper than the bound.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from app.core.errors import Field, JsonKey, UserError, UserErrorCode

MAX_FILTER_BYTES = 4096
MAX_FILTER_NODES = 100
MAX_FILTER_DEPTH = 8
# Filters nest through $and/$or (an array, then a filter) or $not (a filter): the deepest
# JSON a filter within MAX_FILTER_DEPTH can be is two containers per level, then an
# operator object and its $in array.
_MAX_CONTAINERS = 2 * MAX_FILTER_DEPTH + 1

Scalar = str | int | float | bool | None
"""A JSON scalar: what a field is compared with."""

Where = tuple[str | int, ...]
"""A place inside the filter document: its keys and array indexes, e.g.
``("$or", 1, "order_status", "$in")``."""

EQUALITY = ("$eq", "$ne")
MEMBERSHIP = ("$in", "$nin")
ORDER = ("$gt", "$gte", "$lt", "$lte")
FIELD_OPERATORS = (*EQUALITY, *MEMBERSHIP, "$exists", *ORDER)
LOGICAL_OPERATORS = ("$and", "$or", "$not")


@dataclass(frozen=True)
class Condition:
    """One operator on one field of the payload, e.g. ``order_status`` ``$in`` a list."""

    where: Where
    field: tuple[str, ...]
    operator: str
    operand: Scalar | tuple[Scalar, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.field)


@dataclass(frozen=True)
class AllOf:
    """A filter object or ``$and``: every part must hold (none: it always holds)."""

    where: Where
    parts: tuple[Clause, ...]


@dataclass(frozen=True)
class AnyOf:
    """``$or``: at least one part must hold."""

    where: Where
    parts: tuple[Clause, ...]


@dataclass(frozen=True)
class Not:
    """``$not``: its filter must not hold."""

    where: Where
    part: Clause


Clause = Condition | AllOf | AnyOf | Not


def parse_filter(field: Field, document: Any) -> tuple[AllOf | None, list[UserError]]:
    """The filter ``document`` (a decoded JSON value) as a tree, or the user errors that
    refuse it, each at ``field`` followed by the place in the document."""
    errors = _measure(field, document)
    if errors:
        return None, errors
    parser = _Parser(field)
    parsed = parser.filter(document, (), 1)
    if parser.errors or parsed is None:
        return None, parser.errors
    return parsed, []


def _measure(field: Field, document: Any) -> list[UserError]:
    """Refuse a document that is not an object, too deep, of too many values or too long,
    touching at most MAX_FILTER_NODES values before the (linear) encoding."""
    if not isinstance(document, dict):
        return [_error(field, 'A filter is a JSON object, e.g. {"order_status": "notified"}.')]
    pending: list[tuple[Any, int, Where]] = [(document, 1, ())]
    seen = 0
    while pending:
        value, depth, where = pending.pop()
        seen += 1
        if isinstance(value, dict | list):
            if depth > _MAX_CONTAINERS:
                return [_too_deep(field, where)]
            if isinstance(value, dict) and not all(isinstance(key, str) for key in value):
                return [_error(field, "The filter is not valid JSON.")]
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if seen + len(pending) >= MAX_FILTER_NODES:
                    return [_too_many(field)]
                pending.append((item, depth + 1, (*where, key)))
    try:
        encoded = json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        size = len(encoded.encode())
    except (TypeError, ValueError, UnicodeEncodeError):
        return [_error(field, "The filter is not valid JSON.")]
    if size > MAX_FILTER_BYTES:
        return [
            _error(
                field,
                f"The filter is {size:,} bytes as JSON; the limit is {MAX_FILTER_BYTES:,}.",
                UserErrorCode.TOO_LARGE,
            )
        ]
    return []


class _Parser:
    """One document's parse: the tree, and every error found on the way."""

    def __init__(self, field: Field) -> None:
        self.field = field
        self.errors: list[UserError] = []

    def refuse(self, where: Where, message: str) -> None:
        self.errors.append(_error(_at(self.field, where), message))

    def filter(self, value: Any, where: Where, level: int) -> AllOf | None:
        if not isinstance(value, dict):
            self.refuse(where, 'A filter is a JSON object, e.g. {"order_status": "notified"}.')
            return None
        if level > MAX_FILTER_DEPTH:
            self.errors.append(_too_deep(self.field, where))
            return None
        parts: list[Clause] = []
        for key, operand in value.items():
            at = (*where, key)
            clause = (
                self.logical(key, operand, at, level)
                if key.startswith("$")
                else self.field_clause(key, operand, at)
            )
            if clause is not None:
                parts.extend(clause)
        return AllOf(where, tuple(parts))

    def logical(self, key: str, operand: Any, at: Where, level: int) -> list[Clause] | None:
        if key == "$not":
            negated = self.filter(operand, at, level + 1)
            return None if negated is None else [Not(at, negated)]
        if key in ("$and", "$or"):
            if not isinstance(operand, list) or not operand:
                self.refuse(at, f"{key} takes a non-empty array of filters.")
                return None
            parts = [
                self.filter(item, (*at, index), level + 1) for index, item in enumerate(operand)
            ]
            kept = tuple(part for part in parts if part is not None)
            return [AllOf(at, kept) if key == "$and" else AnyOf(at, kept)]
        if key in FIELD_OPERATORS:
            self.refuse(at, f'{key} applies to a field, e.g. {{"order_status": {{"{key}": ...}}}}.')
        else:
            self.refuse(at, f"Unknown operator {key}; {_OPERATORS_ARE}")
        return None

    def field_clause(self, key: str, operand: Any, at: Where) -> list[Clause] | None:
        path = self.path(key, at)
        if isinstance(operand, dict):
            return self.operators(path, operand, at)
        if isinstance(operand, list):
            self.refuse(
                at,
                "An array is not a value to compare with; for one of several values use "
                '{"$in": [...]}.',
            )
            return None
        if not self.scalar(operand, at):
            return None
        return None if path is None else [Condition(at, path, "$eq", operand)]

    def operators(
        self, path: tuple[str, ...] | None, operators: dict[str, Any], at: Where
    ) -> list[Clause] | None:
        named = [key for key in operators if key.startswith("$")]
        if not operators or not named:
            self.refuse(
                at,
                "A nested object is not a value to compare with: name the field inside it "
                'with a dotted path (e.g. "client.email"), or give operators (e.g. '
                '{"$exists": true}).',
            )
            return None
        if len(named) != len(operators):
            plain = next(key for key in operators if not key.startswith("$"))
            self.refuse(
                at,
                f"An object of operators ({named[0]}) cannot also hold a field ({plain!r}); "
                "use a dotted path for nested fields.",
            )
            return None
        clauses: list[Clause] = []
        for operator, operand in operators.items():
            where = (*at, operator)
            if self.operand(operator, operand, where) and path is not None:
                value = tuple(operand) if isinstance(operand, list) else operand
                clauses.append(Condition(where, path, operator, value))
        return clauses

    def operand(self, operator: str, operand: Any, where: Where) -> bool:
        if operator in EQUALITY:
            if isinstance(operand, dict | list):
                self.refuse(where, f"{operator} takes a string, a number, a boolean or null.")
                return False
            return self.scalar(operand, where)
        if operator in MEMBERSHIP:
            if not isinstance(operand, list) or not operand:
                self.refuse(
                    where,
                    f"{operator} takes a non-empty array of strings, numbers, booleans or null.",
                )
                return False
            valid = True
            for index, item in enumerate(operand):
                if isinstance(item, dict | list):
                    self.refuse(
                        (*where, index), f"{operator} lists strings, numbers, booleans or null."
                    )
                    valid = False
                else:
                    valid = self.scalar(item, (*where, index)) and valid
            return valid
        if operator == "$exists":
            if not isinstance(operand, bool):
                self.refuse(where, "$exists takes true or false.")
                return False
            return True
        if operator in ORDER:
            if isinstance(operand, bool) or not isinstance(operand, int | float | str):
                self.refuse(where, f"{operator} takes a number or a string.")
                return False
            return self.scalar(operand, where)
        if operator in LOGICAL_OPERATORS:
            self.refuse(
                where, f"{operator} combines filters: write it beside fields, not inside one."
            )
        else:
            self.refuse(where, f"Unknown operator {operator}; {_OPERATORS_ARE}")
        return False

    def scalar(self, value: Any, where: Where) -> bool:
        if value is None or isinstance(value, bool | int):
            return True
        if isinstance(value, float):
            if math.isfinite(value):
                return True
            self.refuse(where, "Numbers must be finite.")
            return False
        if isinstance(value, str):
            if _storable(value):
                return True
            self.refuse(where, _UNSTORABLE)
            return False
        self.refuse(where, "Not a JSON value.")
        return False

    def path(self, key: str, at: Where) -> tuple[str, ...] | None:
        segments = tuple(key.split("."))
        if not all(segments):
            self.refuse(
                at,
                "A field path is names joined by dots, none of them empty, e.g. "
                '"property_info.address.city".',
            )
            return None
        if not _storable(key):
            self.refuse(at, _UNSTORABLE)
            return None
        return segments


_OPERATORS_ARE = (
    "the operators are $eq, $ne, $in, $nin, $exists, $gt, $gte, $lt, $lte (on a field) and "
    "$and, $or, $not (of filters)."
)
_UNSTORABLE = "Strings must not contain NUL (\\u0000) or an unpaired surrogate."


def _storable(text: str) -> bool:
    """Whether PostgreSQL can hold ``text`` (and so whether a payload could ever carry it)."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _at(field: Field, where: Where) -> Field:
    return (*field, *(part if isinstance(part, int) else JsonKey(part) for part in where))


def _error(field: Field, message: str, code: UserErrorCode = UserErrorCode.INVALID) -> UserError:
    return UserError(field, message, code)


def _too_deep(field: Field, where: Where) -> UserError:
    return _error(
        _at(field, where),
        f"The filter nests too deeply: at most {MAX_FILTER_DEPTH} levels of filters "
        "($and, $or, $not inside one another).",
        UserErrorCode.TOO_LARGE,
    )


def _too_many(field: Field) -> UserError:
    return _error(
        field,
        f"The filter has more than {MAX_FILTER_NODES} values (keys' values, array items and "
        "objects each count one).",
        UserErrorCode.TOO_LARGE,
    )


def json_kind(value: Any) -> str:
    """A decoded JSON value's type as jsonpath's ``.type()`` names it: null, boolean,
    number, string, array or object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def operand_list(condition: Condition) -> tuple[Scalar, ...]:
    """The values a ``$in``/``$nin`` condition lists (its operand is a tuple then)."""
    if not isinstance(condition.operand, tuple):
        raise TypeError(f"{condition.operator} has no list of values")
    return condition.operand


def operand_scalar(condition: Condition) -> Scalar:
    """The one value of any other condition."""
    if isinstance(condition.operand, tuple):
        raise TypeError(f"{condition.operator} takes a list of values")
    return condition.operand
