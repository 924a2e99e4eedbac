"""Deliveries: one event on its way to one subscription, and the attempts made for it."""

from __future__ import annotations

import dataclasses
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from app.core.delivery_status import DeliveryStatus
from app.core.ids import parse_uuid, try_uuid
from app.core.pagination import Page, PageRequest, make_page
from app.core.signing import SentHeaders, shown_headers
from app.core.viewer import Viewer
from app.store.database import Database, Row
from app.store.delivery_updates import DeliveryState


@dataclass(frozen=True)
class Delivery:
    id: uuid.UUID
    webhook_id: str
    company_id: str
    event_id: uuid.UUID
    subscription_id: uuid.UUID
    webhook_key: str
    subject: str | None
    status: DeliveryStatus
    cycle: int
    attempt_count: int
    max_attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_response_status: int | None
    created_at: datetime
    completed_at: datetime | None
    # Its number among its subject's deliveries on a subscription ordered per subject.
    sequence: int | None = None


def as_changed(delivery: Delivery, change: DeliveryState) -> Delivery:
    """``delivery`` (loaded later) as it was right after ``change``; times in the loaded
    row's time zone, as every other answer gives them."""
    zone = delivery.created_at.tzinfo

    def moment(value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(zone)

    return dataclasses.replace(
        delivery,
        status=change.status,
        cycle=change.cycle,
        attempt_count=change.attempt_count,
        next_attempt_at=moment(change.next_attempt_at),
        last_attempt_at=moment(change.last_attempt_at),
        last_response_status=change.last_response_status,
        completed_at=moment(change.completed_at),
    )


@dataclass(frozen=True)
class Header:
    """One HTTP header as shown: a custom header's value is masked."""

    name: str
    value: str


@dataclass(frozen=True)
class SentDelivery:
    """What the requests of a delivery's attempts share: the webhook-id and number they
    sent, the event whose body they carried, and whether retention kept that body."""

    id: uuid.UUID
    webhook_id: str
    sequence: int | None
    event_id: uuid.UUID
    body_kept: bool
    # The record of each attempt's headers, by (cycle, number), of those that sent any.
    sent: Mapping[tuple[int, int], SentHeaders]


@dataclass(frozen=True)
class SentRequest:
    """The request an attempt POSTed: where (API key parameter values masked), its headers
    in the order sent (custom header values masked), and the event whose body it carried
    (read only when asked for: a delivery's attempts all sent the same bytes)."""

    url: str
    headers: tuple[Header, ...]
    event_id: uuid.UUID


@dataclass(frozen=True)
class Attempt:
    delivery_id: uuid.UUID
    cycle: int
    number: int
    started_at: datetime
    duration_ms: int
    response_status: int | None
    response_body: str | None
    error: str | None
    succeeded: bool
    url: str | None = None


@dataclass(frozen=True)
class DeliveryFilter:
    status: DeliveryStatus | None = None
    webhook_key: str | None = None
    subscription_id: str | None = None
    event_id: str | None = None
    subject: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def delivery_from_row(row: Row) -> Delivery:
    return Delivery(
        id=row["id"],
        webhook_id=row["webhook_id"],
        company_id=row["company_id"],
        event_id=row["event_id"],
        subscription_id=row["subscription_id"],
        webhook_key=row["webhook_key"],
        subject=row["subject"],
        status=DeliveryStatus(row["status"]),
        cycle=row["cycle"],
        attempt_count=row["attempt_count"],
        max_attempts=row["max_attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_attempt_at=row["last_attempt_at"],
        last_response_status=row["last_response_status"],
        created_at=row["created_at"],
        completed_at=row["completed_at"],
        sequence=row["sequence"],
    )


def attempt_from_row(row: Row) -> Attempt:
    return Attempt(
        delivery_id=row["delivery_id"],
        cycle=row["cycle"],
        number=row["number"],
        started_at=row["started_at"],
        duration_ms=row["duration_ms"],
        response_status=row["response_status"],
        response_body=row["response_body"],
        error=row["error"],
        succeeded=row["succeeded"],
        url=row.get("url"),
    )


def sent_request(attempt: Attempt, delivery: SentDelivery) -> SentRequest | None:
    """The request ``attempt`` of ``delivery`` sent; None when it sent none (a delivery
    given up), was recorded before requests were (migration 0018), or retention dropped
    the body it carried."""
    sent = delivery.sent.get((attempt.cycle, attempt.number))
    if sent is None or attempt.url is None or not delivery.body_kept:
        return None
    headers = shown_headers(
        sent, delivery.webhook_id, attempt=attempt.number, sequence=delivery.sequence
    )
    return SentRequest(
        url=attempt.url,
        headers=tuple(Header(name, value) for name, value in headers),
        event_id=delivery.event_id,
    )


async def get_delivery(db: Database, viewer: Viewer, delivery_id: str) -> Delivery | None:
    key = try_uuid(delivery_id)
    if key is None:
        return None
    row = await db.fetch_one("get_delivery", id=key, company_id=viewer.read_scope)
    return delivery_from_row(row) if row else None


def _filter_uuid(value: str | None, noun: str) -> uuid.UUID | None:
    return None if value is None else parse_uuid(value, noun)


async def list_deliveries(
    db: Database, viewer: Viewer, request: PageRequest, delivery_filter: DeliveryFilter
) -> Page[Delivery]:
    rows = await db.fetch_all(
        "list_deliveries",
        company_id=viewer.read_scope,
        status=delivery_filter.status,
        webhook_key=delivery_filter.webhook_key,
        subscription_id=_filter_uuid(delivery_filter.subscription_id, "subscription"),
        event_id=_filter_uuid(delivery_filter.event_id, "event"),
        subject=delivery_filter.subject,
        created_after=delivery_filter.created_after,
        created_before=delivery_filter.created_before,
        **request.query_arguments(),
    )
    return make_page(rows, request, delivery_from_row)


async def deliveries_of_subscriptions(
    db: Database,
    viewer: Viewer,
    subscription_ids: list[uuid.UUID],
    request: PageRequest,
    status: DeliveryStatus | None = None,
) -> dict[uuid.UUID, Page[Delivery]]:
    """The same page (size, cursor, status) of each subscription's deliveries, in one query."""
    grouped: dict[uuid.UUID, list[Row]] = defaultdict(list)
    rows = await db.fetch_all(
        "deliveries_of_subscriptions",
        subscription_ids=subscription_ids,
        company_id=viewer.read_scope,
        status=status,
        **request.query_arguments(),
    )
    for row in rows:
        grouped[row["subscription_id"]].append(row)
    return {
        subscription_id: make_page(grouped[subscription_id], request, delivery_from_row)
        for subscription_id in subscription_ids
    }


async def deliveries_of_events(
    db: Database, viewer: Viewer, event_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[Delivery]]:
    """The deliveries of events the viewer found, oldest first, confined to what it reads."""
    grouped: dict[uuid.UUID, list[Delivery]] = defaultdict(list)
    rows = await db.fetch_all(
        "deliveries_of_events", event_ids=event_ids, company_id=viewer.read_scope
    )
    for row in rows:
        grouped[row["event_id"]].append(delivery_from_row(row))
    return grouped


async def attempts_of_deliveries(
    db: Database, viewer: Viewer, delivery_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[Attempt]]:
    """The attempts of deliveries the viewer found, oldest first.

    For a viewer who does not read receivers' answers (``Viewer.reads_configuration``)
    they come without response body, error and URL, which its database role could not
    read anyway.
    """
    if viewer.reads_configuration:
        rows = await db.fetch_all("attempts_of_deliveries", delivery_ids=delivery_ids)
    else:
        rows = await db.fetch_all("attempt_statuses_of_deliveries", delivery_ids=delivery_ids)
    grouped: dict[uuid.UUID, list[Attempt]] = defaultdict(list)
    for row in rows:
        grouped[row["delivery_id"]].append(attempt_from_row(row))
    return grouped


async def sent_deliveries(
    db: Database, viewer: Viewer, delivery_ids: list[uuid.UUID]
) -> dict[uuid.UUID, SentDelivery]:
    """What the requests of deliveries the viewer found share (see :class:`SentDelivery`)."""
    rows = await db.fetch_all("sent_deliveries", ids=delivery_ids, company_id=viewer.read_scope)
    sent: dict[uuid.UUID, dict[tuple[int, int], SentHeaders]] = defaultdict(dict)
    records = await db.fetch_all(
        "sent_headers_of_deliveries", ids=delivery_ids, company_id=viewer.read_scope
    )
    for record in records:
        sent[record["delivery_id"]][record["cycle"], record["number"]] = SentHeaders(
            timestamp=record["webhook_timestamp"],
            signature=record["signature"],
            user_agent=record["user_agent"],
            custom_names=tuple(record["header_names"] or ()),
            traceparent=record["traceparent"],
        )
    return {
        row["id"]: SentDelivery(
            id=row["id"],
            webhook_id=row["webhook_id"],
            sequence=row["sequence"],
            event_id=row["event_id"],
            body_kept=row["body_kept"],
            sent=sent.get(row["id"], {}),
        )
        for row in rows
    }


async def event_bodies(
    db: Database, viewer: Viewer, event_ids: list[uuid.UUID]
) -> dict[uuid.UUID, str | None]:
    """The bytes delivered for events the viewer found, as text (UTF-8 JSON, as they were
    signed); None once retention dropped them."""
    rows = await db.fetch_all("event_bodies", ids=event_ids, company_id=viewer.read_scope)
    return {row["id"]: None if row["body"] is None else bytes(row["body"]).decode() for row in rows}


# A (subscription, subject) queue of a subscription ordered per subject.
SubjectQueue = tuple[uuid.UUID, str]


async def queue_heads(
    db: Database, viewer: Viewer, queues: list[SubjectQueue]
) -> dict[SubjectQueue, Delivery]:
    """The delivery each queue is sending now, which its HELD deliveries wait for,
    confined to what the viewer reads; a queue sending nothing is left out."""
    rows = await db.fetch_all(
        "queue_heads",
        subscription_ids=[subscription_id for subscription_id, _ in queues],
        subjects=[subject for _, subject in queues],
        company_id=viewer.read_scope,
    )
    heads = (delivery_from_row(row) for row in rows)
    return {(head.subscription_id, head.subject): head for head in heads if head.subject}


def attempts_as_of(delivery: Delivery, attempts: list[Attempt]) -> list[Attempt]:
    """The attempts that ``delivery``'s state counts: every earlier cycle's, and the
    first ``attempt_count`` of its own. Attempts are recorded in the same statement that
    advances the delivery, so these are exactly the attempts made when it was in that
    state, whatever was recorded since."""
    made = (delivery.cycle, delivery.attempt_count)
    return [attempt for attempt in attempts if (attempt.cycle, attempt.number) <= made]
