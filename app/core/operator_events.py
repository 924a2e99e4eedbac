"""Operator events: webhook types the service emits about a company's own deliveries.

Three types (migration 0021, examples/catalogue/): ``DELIVERY_FAILED``,
``SUBSCRIPTION_DEACTIVATED`` and ``SUBSCRIPTION_RECOVERED``. Each payload is small and
machine-readable: ids, the webhook, the callback URL as the API shows it (without its API
key parameters), counts, statuses and times; never a secret, a header value or what a
receiver answered. The subject of each is the subscription's id, so a subscription
ordered per subject gets one subscription's events in order.

They never loop: nothing is emitted about a delivery of an operator-event type, nor
about a subscription to one (:func:`may_report_on`), so a failing operator-event
subscription says nothing about itself and two cannot ping-pong.

Pure: the emitter (app/delivery/operator_events.py) reads the clock and the rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from app.core.attempt_errors import is_error_answer, phrase_kind
from app.core.event_body import timestamp

DELIVERY_FAILED = "DELIVERY_FAILED"
SUBSCRIPTION_DEACTIVATED = "SUBSCRIPTION_DEACTIVATED"
SUBSCRIPTION_RECOVERED = "SUBSCRIPTION_RECOVERED"

# Migration 0021's restrictive policies name the same three: the worker may insert
# events and deliveries of these types only.
OPERATOR_WEBHOOKS = frozenset({DELIVERY_FAILED, SUBSCRIPTION_DEACTIVATED, SUBSCRIPTION_RECOVERED})


class ErrorKind(StrEnum):
    """What went wrong with an attempt, from the transport's phrases
    (app/delivery/transport.py) or the retry rule's reason."""

    HTTP_STATUS = "HTTP_STATUS"
    REDIRECT = "REDIRECT"
    TIMEOUT = "TIMEOUT"
    CONNECTION = "CONNECTION"
    TLS = "TLS"
    DNS = "DNS"
    BLOCKED = "BLOCKED"
    INVALID_RESPONSE = "INVALID_RESPONSE"
    GIVEN_UP = "GIVEN_UP"
    OTHER = "OTHER"


# The operator events' kind of each kind of transport phrase (app/core/attempt_errors.py):
# the four ways a connection fails are one; a phrase not listed is OTHER.
_KIND_OF_PHRASE = {
    "redirect": ErrorKind.REDIRECT,
    "timeout": ErrorKind.TIMEOUT,
    "connection_refused": ErrorKind.CONNECTION,
    "connection_reset": ErrorKind.CONNECTION,
    "connection_closed": ErrorKind.CONNECTION,
    "connection_failed": ErrorKind.CONNECTION,
    "tls_error": ErrorKind.TLS,
    "dns_error": ErrorKind.DNS,
    "blocked_target": ErrorKind.BLOCKED,
    "invalid_response": ErrorKind.INVALID_RESPONSE,
}


class DeactivationReason(StrEnum):
    GONE = "GONE"
    FAILING = "FAILING"


def may_report_on(webhook_key: str) -> bool:
    """Whether an operator event may be emitted about a delivery of ``webhook_key`` or a
    subscription to it: never about operator events themselves (no loops)."""
    return webhook_key not in OPERATOR_WEBHOOKS


def error_kind(error: str | None, *, given_up: bool = False) -> ErrorKind:
    """The kind of a failed attempt's ``error`` (the transport's phrase)."""
    if given_up:
        return ErrorKind.GIVEN_UP
    if error is None:
        return ErrorKind.OTHER
    if is_error_answer(error):
        return ErrorKind.HTTP_STATUS
    return _KIND_OF_PHRASE.get(phrase_kind(error) or "", ErrorKind.OTHER)


@dataclass(frozen=True)
class SubscriptionFacts:
    """What an operator event says about the subscription concerned."""

    id: uuid.UUID
    company_id: str
    webhook_key: str
    callback_url: str


@dataclass(frozen=True)
class DeliveryFacts:
    """What an operator event says about one delivery of that subscription."""

    id: uuid.UUID
    webhook_id: str
    event_id: uuid.UUID
    subject: str | None
    cycle: int
    attempt_count: int
    last_response_status: int | None


@dataclass(frozen=True)
class OperatorEvent:
    """An operator event to emit: its type, its company, its payload and the key that
    makes emitting it again (a replayed job) a no-op."""

    webhook_key: str
    company_id: str
    subject: str
    payload: dict[str, Any]
    idempotency_key: str


def _optional_timestamp(moment: datetime | None) -> str | None:
    return None if moment is None else timestamp(moment)


def _about(subscription: SubscriptionFacts) -> dict[str, Any]:
    return {
        "subscription_id": str(subscription.id),
        "webhook": subscription.webhook_key,
        "callback_url": subscription.callback_url,
    }


def _delivery_fields(delivery: DeliveryFacts) -> dict[str, Any]:
    return {
        "delivery_id": str(delivery.id),
        "webhook_id": delivery.webhook_id,
        "event_id": str(delivery.event_id),
        "subject": delivery.subject,
        "cycle": delivery.cycle,
        "attempt_count": delivery.attempt_count,
        "last_response_status": delivery.last_response_status,
    }


def _event(
    webhook_key: str, subscription: SubscriptionFacts, payload: dict[str, Any], cause: str
) -> OperatorEvent:
    return OperatorEvent(
        webhook_key=webhook_key,
        company_id=subscription.company_id,
        subject=str(subscription.id),
        payload=payload,
        idempotency_key=f"{webhook_key}:{cause}",
    )


def delivery_failed(
    subscription: SubscriptionFacts,
    delivery: DeliveryFacts,
    *,
    kind: ErrorKind,
    last_attempt_at: datetime,
    failed_at: datetime,
) -> OperatorEvent:
    """A delivery failed for good; one event per delivery and cycle."""
    payload = {
        **_about(subscription),
        **_delivery_fields(delivery),
        "error_kind": kind.value,
        "last_attempt_at": timestamp(last_attempt_at),
        "failed_at": timestamp(failed_at),
    }
    return _event(DELIVERY_FAILED, subscription, payload, f"{delivery.id}:{delivery.cycle}")


def subscription_deactivated(
    subscription: SubscriptionFacts,
    *,
    reason: DeactivationReason,
    deactivated_at: datetime,
    failing_since: datetime | None,
    gone: DeliveryFacts | None = None,
) -> OperatorEvent:
    """A subscription was deactivated; ``gone`` is the delivery answered with 410. One
    event per deactivation (a reactivated subscription may be deactivated again)."""
    payload = {
        **_about(subscription),
        "reason": reason.value,
        "deactivated_at": timestamp(deactivated_at),
        "failing_since": _optional_timestamp(failing_since),
        "delivery_id": None if gone is None else str(gone.id),
        "webhook_id": None if gone is None else gone.webhook_id,
        "last_response_status": None if gone is None else gone.last_response_status,
    }
    cause = f"{subscription.id}:{deactivated_at.isoformat()}"
    return _event(SUBSCRIPTION_DEACTIVATED, subscription, payload, cause)


def subscription_recovered(
    subscription: SubscriptionFacts,
    delivery: DeliveryFacts,
    *,
    failing_since: datetime,
    recovered_at: datetime,
) -> OperatorEvent:
    """A failing subscription's attempt succeeded; one event per failing period (the
    successful attempt that ended it is the cause)."""
    payload = {
        **_about(subscription),
        **_delivery_fields(delivery),
        "failing_since": timestamp(failing_since),
        "recovered_at": timestamp(recovered_at),
    }
    cause = f"{subscription.id}:{failing_since.isoformat()}"
    return _event(SUBSCRIPTION_RECOVERED, subscription, payload, cause)
