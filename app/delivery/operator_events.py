"""Emitting operator events: recorded and fanned out inside the caller's transaction.

The caller is the transaction that records the cause (the last failed attempt, the
deactivation, the recovering success), so the event commits with its cause or not at all:
a crash loses none, and a cause that cannot be recorded emits none. The event then goes
through the same fan-out statement as ``publishEvent`` (app/store/queue.py), so the
company's active subscriptions to its type, their filters, ordering, rates, signing and
retries all apply. The payloads and the no-loop rule are app/core/operator_events.py's:
each ``report_*`` below emits nothing about a delivery of an operator-event type or a
subscription to one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg.types.json import Jsonb

from app.core.event_body import delivery_body
from app.core.ids import new_id
from app.core.operator_events import (
    DeactivationReason,
    DeliveryFacts,
    OperatorEvent,
    SubscriptionFacts,
    delivery_failed,
    error_kind,
    may_report_on,
    subscription_deactivated,
    subscription_recovered,
)
from app.delivery.outgoing import OutgoingDelivery
from app.delivery.transport import AttemptOutcome
from app.store.database import Row, Session
from app.store.queue import fan_out_event


@dataclass(frozen=True)
class Cause:
    """The attempt an operator event is about: its delivery, number and outcome."""

    delivery: OutgoingDelivery
    cycle: int
    attempt: int
    outcome: AttemptOutcome
    # The attempt span's traceparent (None: not traced, or nothing was sent): the operator
    # event's attempts continue that trace, so following an order shows who was told.
    traceparent: str | None = None

    @property
    def subscription(self) -> SubscriptionFacts:
        return SubscriptionFacts(
            id=self.delivery.endpoint.subscription_id,
            company_id=self.delivery.company_id,
            webhook_key=self.delivery.webhook_key,
            callback_url=self.delivery.endpoint.callback_url,
        )

    @property
    def facts(self) -> DeliveryFacts:
        return DeliveryFacts(
            id=self.delivery.id,
            webhook_id=self.delivery.webhook_id,
            event_id=self.delivery.event_id,
            subject=self.delivery.subject,
            cycle=self.cycle,
            attempt_count=self.attempt,
            last_response_status=self.outcome.status,
        )


async def report_failure(tx: Session, cause: Cause, *, given_up: bool, max_attempts: int) -> None:
    """DELIVERY_FAILED: the cause was the delivery's last attempt."""
    if not may_report_on(cause.delivery.webhook_key):
        return
    event = delivery_failed(
        cause.subscription,
        cause.facts,
        kind=error_kind(cause.outcome.error, given_up=given_up),
        last_attempt_at=cause.outcome.started_at,
        failed_at=datetime.now(UTC),
    )
    await emit(tx, event, max_attempts=max_attempts, traceparent=cause.traceparent)


async def report_gone(tx: Session, cause: Cause, deactivated: Row, *, max_attempts: int) -> None:
    """SUBSCRIPTION_DEACTIVATED (GONE): the cause was answered 410 and ``deactivated`` is
    the ``deactivate_subscription`` row."""
    if not may_report_on(cause.delivery.webhook_key):
        return
    event = subscription_deactivated(
        cause.subscription,
        reason=DeactivationReason.GONE,
        deactivated_at=deactivated["deactivated_at"],
        failing_since=deactivated["failing_since"],
        gone=cause.facts,
    )
    await emit(tx, event, max_attempts=max_attempts, traceparent=cause.traceparent)


async def report_failing(tx: Session, deactivated: Row, *, max_attempts: int) -> None:
    """SUBSCRIPTION_DEACTIVATED (FAILING): ``deactivated`` is the ``deactivate_subscription``
    row of a subscription that only failed for the period."""
    if not may_report_on(deactivated["webhook_key"]):
        return
    subscription = SubscriptionFacts(
        id=deactivated["id"],
        company_id=deactivated["company_id"],
        webhook_key=deactivated["webhook_key"],
        callback_url=deactivated["callback_url"],
    )
    event = subscription_deactivated(
        subscription,
        reason=DeactivationReason.FAILING,
        deactivated_at=deactivated["deactivated_at"],
        failing_since=deactivated["failing_since"],
    )
    await emit(tx, event, max_attempts=max_attempts)


async def report_recovery(
    tx: Session, cause: Cause, failing_since: datetime, *, max_attempts: int
) -> None:
    """SUBSCRIPTION_RECOVERED: the cause succeeded and cleared ``failing_since``."""
    if not may_report_on(cause.delivery.webhook_key):
        return
    event = subscription_recovered(
        cause.subscription,
        cause.facts,
        failing_since=failing_since,
        recovered_at=cause.outcome.started_at,
    )
    await emit(tx, event, max_attempts=max_attempts, traceparent=cause.traceparent)


async def emit(
    tx: Session, event: OperatorEvent, *, max_attempts: int, traceparent: str | None = None
) -> bool:
    """Record ``event`` and fan it out inside ``tx``; False when nothing was written (its
    cause emitted it before, or the company has no subscription to its type).
    ``traceparent``: the trace its attempts continue (its cause's attempt span)."""
    event_id = new_id()
    now = datetime.now(UTC)
    created_at = now.replace(microsecond=now.microsecond // 1000 * 1000)
    payload_json = json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False).encode()
    body = delivery_body(
        event_id, event.webhook_key, event.company_id, event.subject, created_at, payload_json
    )
    row = await tx.fetch_one(
        "insert_operator_event",
        id=event_id,
        company_id=event.company_id,
        webhook_key=event.webhook_key,
        subject=event.subject,
        payload=Jsonb(event.payload),
        idempotency_key=event.idempotency_key,
        body=body,
        created_at=created_at,
        traceparent=traceparent,
    )
    if row is None:
        return False
    await fan_out_event(
        tx,
        event_id=event_id,
        company_id=event.company_id,
        webhook_key=event.webhook_key,
        subject=event.subject,
        max_attempts=max_attempts,
        subscription_id=None,
    )
    return True
