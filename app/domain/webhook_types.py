"""Webhook types: the catalogue of events a company can subscribe to.

Each type carries the JSON Schema (draft 2020-12) its payloads must match, a sample that
matches it, and optionally where in a payload its subject and its status are. Operators
add and change types with :func:`put_webhook_type` (``webhooks webhook-type put``);
publishing checks each payload against its type's schema (:func:`payload_errors`).
Changing a type never touches events already published.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg.types.json import Json

from app.core.errors import InvalidInput, JsonKey, UserError, UserErrorCode
from app.core.payload_schema import (
    MISSING,
    PayloadSchema,
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
from app.core.validation import MAX_SUBJECT, check_text, holds_nul, unstorable
from app.store.database import Database, Row, Sent, Session

KEY_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
MAX_NAME = 100
MAX_TYPE_DESCRIPTION = 2000
MAX_SCHEMA_BYTES = 256 * 1024
MAX_SAMPLE_BYTES = 64 * 1024
# How many schema violations one publishEvent reports: enough to fix a payload in one
# go, few enough that a hostile payload cannot make a huge response.
MAX_REPORTED_VIOLATIONS = 20


@dataclass(frozen=True)
class WebhookType:
    key: str
    name: str
    description: str
    payload_schema: dict[str, Any]
    sample_payload: dict[str, Any]
    subject_pointer: str | None
    status_pointer: str | None
    statuses: tuple[StatusValue, ...]
    updated_at: datetime


@dataclass(frozen=True)
class WebhookTypeDefinition:
    """What an operator puts: a new type, or every field of an existing one."""

    key: str
    name: str
    description: str
    payload_schema: Any
    sample_payload: Any
    subject_pointer: str | None = None
    status_pointer: str | None = None


class PutOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class PutResult:
    webhook_type: WebhookType
    outcome: PutOutcome


def _from_row(row: Row) -> WebhookType:
    schema = row["payload_schema"]
    status_pointer = row["status_pointer"]
    statuses = None
    if status_pointer is not None:
        segments = parse_pointer(status_pointer)
        statuses = status_values(schema, segments) if segments is not None else None
    return WebhookType(
        key=row["key"],
        name=row["name"],
        description=row["description"],
        payload_schema=schema,
        sample_payload=row["sample_payload"],
        subject_pointer=row["subject_pointer"],
        status_pointer=status_pointer,
        statuses=tuple(statuses or ()),
        updated_at=row["updated_at"],
    )


async def list_webhook_types(db: Database) -> list[WebhookType]:
    return [_from_row(row) for row in await db.fetch_all("list_webhook_types")]


async def webhook_types_by_key(db: Database) -> dict[str, WebhookType]:
    return {webhook.key: webhook for webhook in await list_webhook_types(db)}


async def get_webhook_type(db: Database, key: str) -> WebhookType | None:
    row = await db.fetch_one("get_webhook_type", key=key)
    return _from_row(row) if row else None


def unknown_webhook(key: str) -> UserError:
    """The user error for a ``webhook_key`` that is not in the catalogue."""
    return UserError(("webhook_key",), f"Unknown webhook {key!r}.", UserErrorCode.UNKNOWN_WEBHOOK)


# -- operators: adding and changing types ----------------------------------------------------


async def put_webhook_type(db: Database, definition: WebhookTypeDefinition) -> PutResult:
    """Create the type, or replace every field of the one with this key.

    Refused (InvalidInput, nothing written) when :func:`definition_errors` finds anything.
    A put that changes nothing writes nothing (``updated_at`` stays, and running
    processes keep their compiled schema).
    """
    errors = definition_errors(definition)
    if errors:
        raise InvalidInput(errors)
    row = await db.fetch_one(
        "put_webhook_type",
        key=definition.key,
        name=definition.name,
        description=definition.description,
        payload_schema=Json(definition.payload_schema),
        sample_payload=Json(definition.sample_payload),
        subject_pointer=definition.subject_pointer,
        status_pointer=definition.status_pointer,
    )
    if row is not None:
        outcome = PutOutcome.CREATED if row["created"] else PutOutcome.UPDATED
        return PutResult(_from_row(row), outcome)
    unchanged = await get_webhook_type(db, definition.key)
    if unchanged is None:
        raise RuntimeError("a put that changed nothing found no type")
    return PutResult(unchanged, PutOutcome.UNCHANGED)


def definition_errors(definition: WebhookTypeDefinition) -> list[UserError]:
    """Everything wrong with a definition: the key's form, the name and description, the
    schema (a valid draft 2020-12 schema of an object, only local references), the
    sample (it must match the schema), and the pointers (each must find a value in the
    sample; the status pointer a field whose values the schema lists)."""
    errors: list[UserError] = []
    if not KEY_PATTERN.fullmatch(definition.key):
        errors.append(
            UserError(
                ("key",),
                "A key is an upper-case letter, then at most 63 upper-case letters, digits "
                "or '_', e.g. ORDER_STATUS.",
                UserErrorCode.INVALID,
            )
        )
    for field, value, limit in (
        ("name", definition.name, MAX_NAME),
        ("description", definition.description, MAX_TYPE_DESCRIPTION),
    ):
        if not value.strip():
            errors.append(UserError((field,), f"A {field} is required.", UserErrorCode.REQUIRED))
        elif unstorable(value):  # e.g. a command line's bytes that are not UTF-8
            errors.append(
                UserError((field,), f"The {field} is not valid UTF-8 text.", UserErrorCode.INVALID)
            )
            continue
        errors += check_text((field,), value, limit, field)
    schema_errors = _storage_errors("schema", definition.payload_schema, MAX_SCHEMA_BYTES) or [
        UserError(("schema",), problem, UserErrorCode.INVALID)
        for problem in schema_problems(definition.payload_schema)
    ]
    errors += schema_errors
    # The sample and the status pointer are checked against a usable schema only.
    schema = None if schema_errors else definition.payload_schema
    sample = definition.sample_payload
    sample_errors = _storage_errors("sample", sample, MAX_SAMPLE_BYTES)
    if not sample_errors and not isinstance(sample, dict):
        sample_errors = [
            UserError(("sample",), "The sample must be a JSON object.", UserErrorCode.INVALID)
        ]
    errors += sample_errors
    if sample_errors:
        return errors
    if schema is not None:
        report = compile_schema(schema).check(sample, 0, MAX_REPORTED_VIOLATIONS)
        errors += [
            UserError(
                ("sample",),
                f"does not match the schema: {violation.message}",
                UserErrorCode.SCHEMA_MISMATCH,
            )
            for violation in report.violations
        ]
    errors += _pointer_errors(
        "subject_pointer", definition.subject_pointer, sample, _subject_problem
    )
    errors += _pointer_errors(
        "status_pointer",
        definition.status_pointer,
        sample,
        lambda segments, _value: _status_problem(schema, segments),
    )
    return errors


def _storage_errors(field: str, value: Any, limit: int) -> list[UserError]:
    """A schema or sample must fit a jsonb column, and ``limit`` bytes as JSON."""
    if holds_nul(value):
        # Checked first: such a string cannot even be encoded to measure its size.
        return [
            UserError(
                (field,),
                f"The {field} contains U+0000 or an unpaired surrogate, which the database "
                "cannot store.",
                UserErrorCode.INVALID,
            )
        ]
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > limit:
        return [
            UserError(
                (field,),
                f"The {field} is {size} bytes; the limit is {limit} bytes.",
                UserErrorCode.TOO_LARGE,
            )
        ]
    return []


def _pointer_errors(
    field: str,
    pointer: str | None,
    sample: dict[str, Any],
    problem: Callable[[tuple[str, ...], Any], str | None],
) -> list[UserError]:
    """A pointer must find a value in the sample, and that value suit it (``problem``)."""
    if pointer is None:
        return []
    segments = parse_pointer(pointer)
    if not segments:
        return [
            UserError(
                (field,),
                f"{json.dumps(pointer)} is not a JSON pointer to a field, e.g. /order_id.",
                UserErrorCode.INVALID,
            )
        ]
    value = resolve(sample, segments)
    found = "finds nothing in the sample." if value is MISSING else problem(segments, value)
    if found is None:
        return []
    return [UserError((field,), f"{pointer}: {found}", UserErrorCode.INVALID)]


def _subject_problem(segments: tuple[str, ...], value: Any) -> str | None:
    if subject_from(value) is None:
        return f"a subject is a string or an integer; the sample has {shown(value)} there."
    return None


def _status_problem(schema: dict[str, Any] | None, segments: tuple[str, ...]) -> str | None:
    if schema is None:
        return None  # the schema's own errors are reported
    if status_values(schema, segments) is None:
        return (
            "the schema lists no string values there (a oneOf of const branches, each "
            "with its description, or an enum)."
        )
    return None


# -- publishing: checking payloads --------------------------------------------------------


@dataclass(frozen=True)
class PayloadRules:
    """What publishing checks and derives with a type: its compiled schema, and where
    its subject is."""

    version: datetime
    schema: PayloadSchema
    subject_pointer: tuple[str, ...] | None


class _CompiledSchemas:
    """Compiled payload schemas by type and version (``updated_at``), so a schema is
    compiled once per process and version, and an operator's update is picked up by the
    next publish, without a restart. Bounded: old versions fall out."""

    def __init__(self, capacity: int = 64) -> None:
        self._capacity = capacity
        self._current: dict[str, datetime] = {}
        self._compiled: OrderedDict[tuple[str, datetime], PayloadSchema] = OrderedDict()

    def current(self, key: str) -> datetime | None:
        """The version of ``key`` the database had when last asked."""
        return self._current.get(key)

    def get(self, key: str, version: datetime) -> PayloadSchema | None:
        self._current[key] = version
        found = self._compiled.get((key, version))
        if found is not None:
            self._compiled.move_to_end((key, version))
        return found

    def add(self, key: str, version: datetime, schema: dict[str, Any]) -> PayloadSchema:
        compiled = compile_schema(schema)
        self._compiled[(key, version)] = compiled
        while len(self._compiled) > self._capacity:
            self._compiled.popitem(last=False)
        return compiled


_COMPILED = _CompiledSchemas()


async def send_payload_rules(session: Session, key: str) -> Sent:
    """Send the look-up of type ``key``'s rules (read them with :func:`payload_rules`): the
    schema itself comes back only when this process has not compiled its current version."""
    return await session.send("get_payload_rules", key=key, cached_version=_COMPILED.current(key))


async def payload_rules(
    session: Session, key: str, sent: Sent | None = None
) -> PayloadRules | None:
    """The rules of type ``key`` (None if there is none), in one round trip: the answer of
    ``sent`` (:func:`send_payload_rules`) when given, else of a look-up sent now."""
    if sent is None:
        sent = await send_payload_rules(session, key)
    row = await sent.row()
    if row is None:
        return None
    version: datetime = row["updated_at"]
    compiled = _COMPILED.get(key, version)
    if compiled is None:
        schema = row["payload_schema"]
        if schema is None:
            # This version was compiled here before but fell out of the cache (or
            # another coroutine saw a newer one meanwhile): ask for its schema.
            row = await session.fetch_one("get_payload_rules", key=key, cached_version=None)
            if row is None:
                return None
            version, schema = row["updated_at"], row["payload_schema"]
        compiled = _COMPILED.add(key, version, schema)
    subject_pointer = row["subject_pointer"]
    return PayloadRules(
        version=version,
        schema=compiled,
        subject_pointer=parse_pointer(subject_pointer) if subject_pointer else None,
    )


def payload_errors(
    rules: PayloadRules, payload: dict[str, Any], encoded_size: int
) -> list[UserError]:
    """The payload's violations of its type's schema, each at ``("payload", <pointer>)``,
    at most :data:`MAX_REPORTED_VIOLATIONS` and a last one saying that more were left out."""
    report = rules.schema.check(payload, encoded_size, MAX_REPORTED_VIOLATIONS)
    errors = [
        UserError(
            (
                "payload",
                *(part if isinstance(part, int) else JsonKey(part) for part in violation.pointer),
            ),
            violation.message,
            UserErrorCode.SCHEMA_MISMATCH,
        )
        for violation in report.violations
    ]
    if report.more:
        errors.append(
            UserError(
                ("payload",),
                f"More violations are not listed (at most {MAX_REPORTED_VIOLATIONS} are, and "
                "only the first one for a payload over 8 KiB).",
                UserErrorCode.SCHEMA_MISMATCH,
            )
        )
    return errors


def derived_subject(
    rules: PayloadRules, payload: dict[str, Any]
) -> tuple[str | None, list[UserError]]:
    """The subject the payload gives at its type's subject pointer (None without one),
    checked as a given subject is."""
    if rules.subject_pointer is None:
        return None, []
    subject = subject_from(resolve(payload, rules.subject_pointer))
    field = ("payload", *(JsonKey(part) for part in rules.subject_pointer))
    errors = check_text(
        field, subject, MAX_SUBJECT, f"subject (from {pointer_text(rules.subject_pointer)})"
    )
    return subject, errors
