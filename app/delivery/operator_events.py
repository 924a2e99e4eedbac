"""Emitting operator events: recorded and fanned out inside the caller's transaction.

The caller is the transaction that records the cause (the last failed attempt, the
deactivation, the recovering success), so the event commits with its cause or not at all:
a crash loses none, and a cause that cannot be recorded emits none. The event then goes
through the same fan-out statement as ``publishEvent`` (app/store/queue.py), so the
company's active subscriptions to its type, their filters, ordering, rates, signing and
retries all apply. The payloads and the no-loop rule are app/core/operator_events.py's.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from psycopg.types.json import Jsonb

from app.core.event_body import delivery_body
from app.core.ids import new_id
from app.core.operator_events import OperatorEvent
from app.store.database import Session
from app.store.queue import fan_out_event


async def emit(tx: Session, event: OperatorEvent, *, max_attempts: int) -> bool:
    """Record ``event`` and fan it out inside ``tx``; False when nothing was written (its
    cause emitted it before, or the company has no subscription to its type)."""
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
