"""JSON Schemas of webhook payloads: checking an operator's schema, validating payloads,
and JSON pointers into them. Pure: no I/O, nothing fetched (every ``$ref`` is local).

The library is ``jsonschema-rs`` (draft 2020-12). Its own messages are turned into the
API's: each names the JSON pointer of the offending value and what was expected, e.g.
``/order_status: expected one of "ordered", "scheduled"; got "shipped"``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

from app.core.schema_expansion import Expansion, expansion

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
# A reference into the same document: "#", "#/$defs/x" or an anchor "#name".
_LOCAL_REF_KEYWORDS = ("$ref", "$dynamicRef")
# Keywords whose values are data, not schemas: a "$ref" inside them is not a reference.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
# Above this size an invalid payload is reported by its first violation only: listing
# every violation costs the library time per violation and a copy of the offending
# value each, so a large hostile payload would cost seconds (measured in the README).
DETAILED_REPORT_BYTES = 8 * 1024
# The library gathers every violation before giving the first, and a schema can check one
# value many times (an allOf, a definition named twice): listing is for payloads whose
# values times the schema's subschemas stay under this, and for schemas that do not
# recurse (listing a recursive one walks every path through the payload).
DETAILED_REPORT_WORK = 50_000
# More subschemas than this, with every $ref followed, is refused: validating a payload
# visits them per value (a doubling chain of references is 2**depth of them).
MAX_EXPANDED_SUBSCHEMAS = 100_000
MAX_SHOWN_CHARACTERS = 40

Pointer = tuple[str | int, ...]
"""A JSON pointer as its segments: object keys and array indices."""


class _Missing:
    """Nothing at a pointer (unlike a null there)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


@dataclass(frozen=True)
class Violation:
    """One way a payload breaks its schema: where, and what was expected there."""

    pointer: Pointer
    message: str


@dataclass(frozen=True)
class Report:
    """The violations found, at most the limit asked for, and whether more were left out."""

    violations: tuple[Violation, ...]
    more: bool = False

    @property
    def valid(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class StatusValue:
    """One value a status field takes, and what it means (from the schema)."""

    value: str
    description: str | None


# -- pointers ---------------------------------------------------------------------------


def pointer_text(pointer: Pointer) -> str:
    """RFC 6901 text of a pointer; ``/`` for the document itself (as messages show it)."""
    if not pointer:
        return "/"
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in pointer)


def parse_pointer(text: str) -> tuple[str, ...] | None:
    """The segments of an RFC 6901 pointer, or None when ``text`` is not one."""
    if text == "":
        return ()
    if not text.startswith("/"):
        return None
    segments = text[1:].split("/")
    for segment in segments:
        # "~" must start "~0" or "~1"; anything else is malformed.
        rest = segment.replace("~0", "").replace("~1", "")
        if "~" in rest:
            return None
    return tuple(segment.replace("~1", "/").replace("~0", "~") for segment in segments)


def resolve(document: Any, pointer: Sequence[str | int]) -> Any:
    """The value at ``pointer`` in ``document``, or :data:`MISSING`."""
    value = document
    for segment in pointer:
        if isinstance(value, dict):
            if segment not in value:
                return MISSING
            value = value[segment]
        elif isinstance(value, list):
            index = _index(segment)
            if index is None or index >= len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    return value


def _index(segment: str | int) -> int | None:
    if isinstance(segment, int):
        return segment
    if segment == "0" or (segment.isdigit() and segment.isascii() and segment[0] != "0"):
        return int(segment)
    return None


def subject_from(value: Any) -> str | None:
    """The subject a payload value gives: a string as it is, an integer as its digits;
    anything else (absent, null, another type) gives none."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    # JSON Schema's integer is any number without a fraction: 332818.0 passes the schema
    # as an integer, so it names the same order as 332818 (a retry compares subjects).
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None


# -- an operator's schema -----------------------------------------------------------------


def schema_problems(schema: Any) -> list[str]:
    """What makes ``schema`` unusable as a payload schema, in an operator's words; empty
    when it is a valid draft 2020-12 schema of an object with only local references."""
    if not isinstance(schema, dict):
        return ["the schema must be a JSON object"]
    problems = [
        f"{pointer_text(where)}: $schema {json.dumps(value)} is not draft 2020-12 "
        f"({json.dumps(DRAFT_2020_12)}, the default when absent)"
        for where, value in _keyword_values(schema, ("$schema",))
        if value not in (DRAFT_2020_12, DRAFT_2020_12 + "#")
    ]
    problems += [
        f"{pointer_text(where)}: {keyword} {json.dumps(value)} is not local: a reference "
        "must start with '#' (nothing is ever fetched)"
        for where, value, keyword in _references(schema)
        if not value.startswith("#")
    ]
    if problems:
        # Checking against the meta-schema would try to fetch what these name.
        return problems
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as error:
        return [
            f"not a valid JSON Schema (draft 2020-12) at {pointer_text(tuple(error.instance_path))}"
            f": {error.message}"
        ]
    except jsonschema_rs.ReferencingError as error:
        return [f"not a usable JSON Schema: {error.message}"]
    if schema.get("type") != "object":
        problems.append('the root must say "type": "object" (a payload is a JSON object)')
    try:
        compile_schema(schema)
    except ValueError as error:
        problems.append(f"the schema does not compile: {error}")
    return problems or _weight_problems(expansion(schema, MAX_EXPANDED_SUBSCHEMAS))


def _weight_problems(weight: Expansion) -> list[str]:
    problems = [
        f"$ref {json.dumps(reference)} cannot be followed in this document"
        for reference in weight.unresolved
    ]
    if weight.subschemas > MAX_EXPANDED_SUBSCHEMAS:
        problems.append(
            f"the schema expands to more than {MAX_EXPANDED_SUBSCHEMAS:,} subschemas once its "
            "$refs are followed (each $ref counts as what it names): validating would take "
            "that much work per payload value"
        )
    return problems


def _keyword_values(schema: Any, keywords: Sequence[str]) -> Iterator[tuple[Pointer, str]]:
    """Every string value of one of ``keywords`` in ``schema``, with where it is, skipping
    the keywords whose values are data."""
    stack: list[tuple[Pointer, Any]] = [((), schema)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                # A property may be named "$ref": its value is a schema, not a reference.
                if key in keywords and isinstance(value, str):
                    yield (*where, key), value
                elif key not in _DATA_KEYWORDS:
                    stack.append(((*where, key), value))
        elif isinstance(node, list):
            stack.extend(((*where, index), item) for index, item in enumerate(node))


def _references(schema: Any) -> Iterator[tuple[Pointer, str, str]]:
    for where, value in _keyword_values(schema, _LOCAL_REF_KEYWORDS):
        yield where, value, str(where[-1])


# -- payloads ------------------------------------------------------------------------------


class PayloadSchema:
    """A compiled payload schema: validates payloads and reports their violations."""

    def __init__(self, validator: jsonschema_rs.Validator, weight: Expansion) -> None:
        self._validator = validator
        # The subschemas one payload value may meet; None: the listing would not be bounded.
        self._per_value = None if weight.recursive else weight.subschemas

    def check(self, payload: Any, encoded_size: int, limit: int) -> Report:
        """At most ``limit`` violations of ``payload`` (``encoded_size`` bytes as JSON)."""
        if self._validator.is_valid(payload):
            return Report(())
        if not self._lists_all(payload, encoded_size):
            try:
                self._validator.validate(payload)
            except jsonschema_rs.ValidationError as error:
                return Report((violation_of(error),), more=True)
            raise RuntimeError("a payload found invalid then validated")
        found: list[Violation] = []
        for violation in self._validator.iter_errors(payload):
            if len(found) == limit:
                return Report(tuple(found), more=True)
            found.append(violation_of(violation))
        return Report(tuple(found))

    def _lists_all(self, payload: Any, encoded_size: int) -> bool:
        if encoded_size > DETAILED_REPORT_BYTES or self._per_value is None:
            return False
        budget = DETAILED_REPORT_WORK // max(self._per_value, 1)
        return _values_within(payload, budget)


def _values_within(document: Any, budget: int) -> bool:
    """Whether ``document`` holds at most ``budget`` JSON values (stops counting past it)."""
    stack = [document]
    while stack:
        budget -= 1
        if budget < 0:
            return False
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return True


def compile_schema(schema: dict[str, Any]) -> PayloadSchema:
    """Compile a schema that :func:`schema_problems` accepted; raises ValueError if not."""
    try:
        validator = jsonschema_rs.validator_for(
            schema,
            validate_formats=True,
            # Never fetch a reference, and match patterns with the linear-time engine (a
            # backtracking one can take exponential time on a hostile string).
            offline=True,
            pattern_options=jsonschema_rs.RegexOptions(),
        )
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError) as error:
        raise ValueError(error.message) from None
    return PayloadSchema(validator, expansion(schema, MAX_EXPANDED_SUBSCHEMAS))


def violation_of(error: jsonschema_rs.ValidationError) -> Violation:
    """The library's error as the API reports it: at its pointer, in the API's words."""
    where = tuple(error.instance_path)
    return Violation(where, f"{pointer_text(where)}: {_expected(error)}")


def _expected(error: jsonschema_rs.ValidationError) -> str:
    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        return f"missing required field {json.dumps(kind.property, ensure_ascii=False)}"
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Type):
        return f"expected {_types(kind.types)}, got {shown(error.instance)}"
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Constant):
        return f"expected {shown(kind.expected_value)}, got {shown(error.instance)}"
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Enum):
        return f"expected one of {_listed(kind.options)}; got {shown(error.instance)}"
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Format):
        return f"expected a {kind.format} string, got {shown(error.instance)}"
    if isinstance(
        kind,
        (jsonschema_rs.ValidationErrorKind.OneOfNotValid, jsonschema_rs.ValidationErrorKind.AnyOf),
    ):
        constants = _constants(kind.context)
        if constants is not None:
            return f"expected one of {_listed(constants)}; got {shown(error.instance)}"
    message = error.message
    if len(message) > 200:
        message = message[:200] + "..."
    return message


def _constants(branches: list[list[jsonschema_rs.ValidationError]]) -> list[Any] | None:
    """The values of a oneOf/anyOf whose every branch is a ``const``, else None."""
    values = []
    for errors in branches:
        if len(errors) != 1:
            return None
        kind = errors[0].kind
        if not isinstance(kind, jsonschema_rs.ValidationErrorKind.Constant):
            return None
        values.append(kind.expected_value)
    return values


_ARTICLES = {"integer": "an integer", "object": "an object", "array": "an array", "null": "null"}


def _types(types: Sequence[str]) -> str:
    named = [_ARTICLES.get(name, f"a {name}") for name in sorted(types, key=lambda t: t == "null")]
    return " or ".join(named)


def _listed(values: Sequence[Any]) -> str:
    return ", ".join(shown(value) for value in values)


def shown(value: Any) -> str:
    """A value as a message shows it: short JSON, objects and arrays by kind only."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str) and len(value) > MAX_SHOWN_CHARACTERS:
        return json.dumps(value[:MAX_SHOWN_CHARACTERS], ensure_ascii=False)[:-1] + '..."'
    return json.dumps(value, ensure_ascii=False)


# -- statuses -----------------------------------------------------------------------------


def status_values(schema: dict[str, Any], pointer: Sequence[str]) -> list[StatusValue] | None:
    """The values the payload field at ``pointer`` takes, by the schema: a ``oneOf`` (or
    ``anyOf``) of ``const`` branches, each with its description, or a plain ``enum``.
    None when the schema lists none there, or lists one that is not a string."""
    node = _schema_at(schema, pointer)
    if node is None:
        return None
    values: list[StatusValue] = []
    if isinstance(node.get("enum"), list):
        values = [StatusValue(value, None) for value in node["enum"] if isinstance(value, str)]
        if len(values) != len(node["enum"]):
            return None
    else:
        branches = node.get("oneOf", node.get("anyOf"))
        if not isinstance(branches, list):
            return None
        for branch in branches:
            branch = _followed(schema, branch)
            if not isinstance(branch, dict) or not isinstance(branch.get("const"), str):
                return None
            description = branch.get("description")
            values.append(
                StatusValue(branch["const"], description if isinstance(description, str) else None)
            )
    return values or None


def _schema_at(schema: dict[str, Any], pointer: Sequence[str]) -> dict[str, Any] | None:
    """The subschema that describes the payload value at ``pointer``: through
    ``properties`` for a key, ``items`` for an index, following local references."""
    node = _followed(schema, schema)
    for segment in pointer:
        if not isinstance(node, dict):
            return None
        properties = node.get("properties")
        if isinstance(properties, dict) and segment in properties:
            node = _followed(schema, properties[segment])
        elif _index(segment) is not None and isinstance(node.get("items"), dict):
            node = _followed(schema, node["items"])
        else:
            return None
    return node if isinstance(node, dict) else None


def _followed(schema: dict[str, Any], node: Any) -> Any:
    """``node``, or what its local ``$ref`` names (a chain of them at most 32 long)."""
    for _ in range(32):
        if not isinstance(node, dict) or not isinstance(node.get("$ref"), str):
            return node
        target = parse_pointer(node["$ref"].removeprefix("#"))
        if target is None:
            return None
        node = resolve(schema, target)
    return None
