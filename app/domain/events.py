"""Events: what the order system publishes, fanned out to a company's subscriptions.

``publish_event`` is atomic: the event, one delivery per matching active subscription and
one queued delivery job per delivery are written in one transaction, or nothing is.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry.context import Context
from psycopg.types.json import Jsonb

from app.core import tracing
from app.core.errors import InvalidInput, UserError, UserErrorCode, missing
from app.core.event_body import delivery_body
from app.core.ids import new_id, try_uuid
from app.core.operator_events import OPERATOR_WEBHOOKS
from app.core.pagination import Page, PageRequest, make_page
from app.core.settings import Settings
from app.core.validation import MAX_IDEMPOTENCY_KEY, MAX_SUBJECT, check_payload, check_text
from app.core.viewer import Viewer
from app.domain.subscriptions import require_active_subscription
from app.domain.webhook_types import (
    PayloadRules,
    derived_subject,
    get_webhook_type,
    payload_errors,
    payload_rules,
    send_payload_rules,
    unknown_webhook,
)
from app.store.database import Database, Row, Session
from app.store.queue import fan_out_event

# The subject of every test event: obviously not an order id (those are numbers).
TEST_ORDER_ID = "ord_test_event"

PUBLISH_SPAN = "publishEvent"
FAN_OUT_SPAN = "fan-out"


@dataclass(frozen=True)
class Event:
    id: uuid.UUID
    company_id: str
    webhook_key: str
    subject: str | None
    payload: dict[str, Any]
    idempotency_key: str | None
    is_test: bool
    created_at: datetime


@dataclass(frozen=True)
class NewEvent:
    company_id: str
    webhook_key: str
    payload: Any
    subject: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class EventLimits:
    """What publishing reads from the settings: the largest payload it accepts, and how
    many attempts each delivery gets."""

    max_payload_bytes: int
    max_attempts: int

    @classmethod
    def of(cls, settings: Settings) -> EventLimits:
        return cls(settings.max_payload_bytes, settings.max_attempts)


@dataclass(frozen=True)
class EventFilter:
    webhook_key: str | None = None
    subject: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def event_from_row(row: Row) -> Event:
    return Event(
        id=row["id"],
        company_id=row["company_id"],
        webhook_key=row["webhook_key"],
        subject=row["subject"],
        payload=row["payload"],
        idempotency_key=row["idempotency_key"],
        is_test=row["is_test"],
        created_at=row["created_at"],
    )


async def publish_event(
    db: Database,
    limits: EventLimits,
    new: NewEvent,
    *,
    is_test: bool = False,
    only_subscription: uuid.UUID | None = None,
    within: Session | None = None,
) -> Event:
    """Record an event and fan it out, or return the event first published with its key.

    In a transaction of its own, or with ``within``, in a savepoint of that transaction
    (``publish_events``): all of the event or none of it either way.

    An idempotency key (per company) makes retries safe: a key used before returns the
    first event and writes nothing, provided the retry asks for the same event: the same
    webhook, the same subject (both absent counts as the same) and an equal payload,
    compared as JSON values by PostgreSQL's ``jsonb`` equality (key order and spacing do
    not count, ``1`` equals ``1.0``, ``true`` is not ``1``). The stored columns are
    compared rather than a hash of the request: they exist for every event ever
    published, and the comparison is exact. A used key with anything different is a
    publisher's bug, not a retry: a ``DUPLICATE`` user error on the ``idempotency_key``
    naming what differs (as Stripe does), and nothing is written.

    The payload must match its webhook's JSON Schema: each violation is a
    ``SCHEMA_MISMATCH`` user error at its JSON pointer in the payload. Without a subject,
    the event's subject is the payload's value at the webhook's subject pointer (for
    ORDER_STATUS the order id, as a string); a subject given is kept as it is, the
    publisher may know better.
    """
    payload_json, errors = check_payload(("payload",), new.payload, limits.max_payload_bytes)
    errors += check_text(("subject",), new.subject, MAX_SUBJECT, "subject")
    errors += check_text(
        ("idempotency_key",), new.idempotency_key, MAX_IDEMPOTENCY_KEY, "idempotency key"
    )
    if new.idempotency_key is not None and not new.idempotency_key:
        errors.append(
            UserError(
                ("idempotency_key",), "An idempotency key must not be empty.", UserErrorCode.INVALID
            )
        )

    event_id = new_id()
    now = datetime.now(UTC)
    created_at = now.replace(microsecond=now.microsecond // 1000 * 1000)
    # The company and the webhook's rules are looked up on the transaction's own
    # connection, sent together with its BEGIN (its pipeline, when it has its own): one
    # round trip, where a pooled session each took four (publishing is on the hot path);
    # the webhook's schema travels only when this process has not compiled its current
    # version. A user error raised inside rolls back, so nothing is written either way.
    async with _atomically(db, within) as tx:
        reference_errors, rules = await _reference_errors(tx, new)
        errors = reference_errors + errors
        if new.webhook_key in OPERATOR_WEBHOOKS and not is_test:
            # Only the service emits them (app/delivery/operator_events.py): a forged
            # DELIVERY_FAILED would be believed by the subscriber's automation.
            errors.append(
                UserError(
                    ("webhook_key",),
                    f"{new.webhook_key} is an operator event: only the service emits it.",
                    UserErrorCode.INVALID,
                )
            )
        subject = new.subject
        if rules is not None and payload_json is not None:
            # Checked only once the payload is an object within the size cap.
            errors += payload_errors(rules, new.payload, len(payload_json))
            if subject is None:
                subject, subject_errors = derived_subject(rules, new.payload)
                errors += subject_errors
        if errors:
            raise InvalidInput(errors)
        if payload_json is None:
            raise RuntimeError("a payload without errors was not encoded")
        encoded: bytes = payload_json
        body = delivery_body(
            event_id,
            new.webhook_key,
            new.company_id,
            subject,
            created_at,
            payload_json,
            is_test=is_test,
        )
        # The span of this publish (the caller's, publish_in_span's), which every attempt
        # of every delivery continues and links to.
        traceparent = tracing.current_traceparent()
        inserted = await tx.send(
            "insert_event",
            id=event_id,
            company_id=new.company_id,
            webhook_key=new.webhook_key,
            subject=subject,
            # As check_payload encoded it: the same JSON value, not encoded a second time.
            payload=Jsonb(new.payload, dumps=lambda _: encoded),
            idempotency_key=new.idempotency_key,
            is_test=is_test,
            body=body,
            created_at=created_at,
            traceparent=traceparent,
        )
        if new.idempotency_key is None:
            # No key, so no earlier event to answer with: the fan-out leaves with the
            # insert, in one round trip (an error of the insert surfaces in the fan-out's
            # answer). With a key, the fan-out waits for the insert to say the event is new.
            await _fan_out(tx, limits, new, event_id, subject, only_subscription)
            row = await inserted.row()
            if row is None:
                raise RuntimeError("an event without an idempotency key was not inserted")
        else:
            row = await inserted.row()
            if row is None:
                # The key was used before (possibly by a concurrent call that just committed).
                existing = await tx.fetch_one(
                    "get_event_by_idempotency_key",
                    company_id=new.company_id,
                    idempotency_key=new.idempotency_key,
                    webhook_key=new.webhook_key,
                    subject=subject,
                    payload=Jsonb(new.payload),
                )
                if existing is None:
                    raise RuntimeError("an idempotency key conflicted with no stored event")
                _check_same_request(existing)
                if tracing.enabled():
                    tracing.annotate(_event_attributes(existing, repeated=True))
                return event_from_row(existing)
            await _fan_out(tx, limits, new, event_id, subject, only_subscription)
        if tracing.enabled():  # off, not even the attributes are built
            tracing.annotate(_event_attributes(row, repeated=False))
    return event_from_row(row)


async def _fan_out(
    tx: Session,
    limits: EventLimits,
    new: NewEvent,
    event_id: uuid.UUID,
    subject: str | None,
    only_subscription: uuid.UUID | None,
) -> None:
    """Deliveries and their jobs in one statement (a mismatch raises, rolling back)."""
    with tracing.internal_span(FAN_OUT_SPAN):
        deliveries = await fan_out_event(
            tx,
            event_id=event_id,
            company_id=new.company_id,
            webhook_key=new.webhook_key,
            subject=subject,
            max_attempts=limits.max_attempts,
            subscription_id=only_subscription,
        )
        if tracing.enabled():
            tracing.annotate(
                {"webhooks.event.id": str(event_id), "webhooks.deliveries": deliveries}
            )


async def publish_in_span(
    db: Database,
    limits: EventLimits,
    new: NewEvent,
    caller: Context | None,
    *,
    within: Session | None = None,
) -> Event:
    """:func:`publish_event` in a ``publishEvent`` span of its own, continuing the trace
    the caller's request carries (``caller``, from ``tracing.caller_context``), so that
    each event published, alone or in a batch (``within``), has its span and its
    attempts' trace."""
    with tracing.server_span(PUBLISH_SPAN, caller):
        return await publish_event(db, limits, new, within=within)


def _event_attributes(row: Row, *, repeated: bool) -> dict[str, tracing.Attribute]:
    """What a span says about an event: ids and its subject (the order id an operator
    searches by), never its payload."""
    return {
        "webhooks.event.id": str(row["id"]),
        "webhooks.webhook": row["webhook_key"],
        "webhooks.company.id": row["company_id"],
        "webhooks.event.subject": row["subject"],
        "webhooks.event.test": row["is_test"] or None,
        "webhooks.event.repeated": repeated or None,
    }


@asynccontextmanager
async def _atomically(db: Database, within: Session | None) -> AsyncIterator[Session]:
    """A transaction of its own, or a savepoint of the one ``within`` is in."""
    if within is None:
        async with db.transaction(pipeline=True) as tx:
            yield tx
    else:
        async with within.savepoint() as tx:
            yield tx


def _check_same_request(existing: Row) -> None:
    """Refuse a reused idempotency key whose request differs from the first one."""
    differing = [
        part
        for part, same in (
            ("webhook", existing["same_webhook"]),
            ("subject", existing["same_subject"]),
            ("payload", existing["same_payload"]),
        )
        if not same
    ]
    if not differing:
        return
    what = " and ".join(differing) if len(differing) < 3 else "webhook, subject and payload"
    raise InvalidInput(
        [
            UserError(
                ("idempotency_key",),
                f"This idempotency key was already used for an event with a different {what}."
                " A retry must repeat the same webhook, subject and payload;"
                " a new event needs a new key.",
                UserErrorCode.DUPLICATE,
            )
        ]
    )


async def _reference_errors(
    tx: Session, new: NewEvent
) -> tuple[list[UserError], PayloadRules | None]:
    """Errors of the company and webhook named, and the webhook's rules if it exists."""
    errors: list[UserError] = []
    company = await tx.send("get_company", id=new.company_id)
    rules_sent = await send_payload_rules(tx, new.webhook_key)
    if await company.row() is None:
        errors.append(missing(("company_id",), "company"))
    rules = await payload_rules(tx, new.webhook_key, rules_sent)
    if rules is None:
        errors.append(unknown_webhook(new.webhook_key))
    return errors, rules


async def get_event(db: Database, viewer: Viewer, event_id: str) -> Event | None:
    key = try_uuid(event_id)
    if key is None:
        return None
    row = await db.fetch_one("get_event", id=key, company_id=viewer.read_scope)
    return event_from_row(row) if row else None


async def list_events(
    db: Database, viewer: Viewer, request: PageRequest, event_filter: EventFilter
) -> Page[Event]:
    rows = await db.fetch_all(
        "list_events",
        company_id=viewer.read_scope,
        webhook_key=event_filter.webhook_key,
        subject=event_filter.subject,
        created_after=event_filter.created_after,
        created_before=event_filter.created_before,
        **request.query_arguments(),
    )
    return make_page(rows, request, event_from_row)


async def events_by_id(
    db: Database, viewer: Viewer, ids: list[uuid.UUID]
) -> dict[uuid.UUID, Event]:
    """Events by id (of deliveries the viewer found), confined to what the viewer reads."""
    rows = await db.fetch_all("get_events", ids=ids, company_id=viewer.read_scope)
    return {row["id"]: event_from_row(row) for row in rows}


async def send_test_event(
    db: Database, limits: EventLimits, viewer: Viewer, subscription_id: str
) -> Event:
    """Deliver the webhook's sample payload to one subscription, through the normal path.

    The event is marked ``isTest``, its body says ``"test": true``, and its subject is
    :data:`TEST_ORDER_ID`, never a real-looking order, so receivers and front-ends can
    tell it apart. The sample goes as it is: its values are invented, and it matches the
    type's schema (an operator's put checks that).
    """
    subscription = await require_active_subscription(
        db, viewer, subscription_id, to="send a test event"
    )
    webhook = await get_webhook_type(db, subscription["webhook_key"])
    if webhook is None:
        raise RuntimeError("a subscription's webhook type is missing")
    return await publish_event(
        db,
        limits,
        NewEvent(
            company_id=viewer.own_company,
            webhook_key=webhook.key,
            payload=webhook.sample_payload,
            subject=TEST_ORDER_ID,
        ),
        is_test=True,
        only_subscription=subscription["id"],
    )
