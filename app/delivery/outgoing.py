"""The outgoing delivery: the one row an attempt works from, typed once after its fetch.

``load_attempt_contexts`` joins a delivery, its event's body and its subscription; the send
path (choosing whether to send, building the target, recording, the failure report) takes
the :class:`OutgoingDelivery` made of it, never the row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from app.core.delivery_status import DeliveryStatus
from app.core.secret_box import SecretBox, header_context, param_context
from app.store.database import Row


@dataclass(frozen=True)
class SealedParam:
    """An API key parameter appended to the URL; ``value`` still encrypted."""

    name: str
    value: str


@dataclass(frozen=True)
class SealedHeader:
    """A custom header sent with every attempt; ``value`` still encrypted."""

    name: str
    value: str


@dataclass(frozen=True)
class Endpoint:
    """The subscription as a sender sees it; secrets and parameter values still encrypted."""

    subscription_id: uuid.UUID
    callback_url: str
    api_key_params: tuple[SealedParam, ...]
    signing_secret: str
    previous_signing_secret: str | None
    previous_secret_expires_at: datetime | None
    is_active: bool
    deleted_at: datetime | None
    headers: tuple[SealedHeader, ...] = ()
    # Its delivery rate (app/delivery/pacing.py); None: attempts go as they come.
    max_deliveries_per_second: int | None = None

    @property
    def is_open(self) -> bool:
        """Whether deliveries may still go to it (active and not deleted)."""
        return self.is_active and self.deleted_at is None


@dataclass(frozen=True)
class OutgoingDelivery:
    """A delivery where its attempts left it, with its body and its endpoint."""

    id: uuid.UUID
    webhook_id: str
    company_id: str
    event_id: uuid.UUID
    # Its webhook type (its subscription's) and its event's subject: what an operator
    # event about it says (app/core/operator_events.py).
    webhook_key: str
    subject: str | None
    status: DeliveryStatus
    cycle: int
    attempt_count: int
    max_attempts: int
    body: bytes
    endpoint: Endpoint
    # The database's clock when the row was read.
    loaded_at: datetime | None = None
    # Its number in its subject's queue (ordered subscriptions only): webhook-sequence.
    sequence: int | None = None
    # The publishEvent span its attempts continue (app/delivery/attempt_trace.py).
    traceparent: str | None = None


def endpoint_from_row(row: Row) -> Endpoint:
    """The endpoint part of a row with a subscription's columns and ``subscription_id``."""
    return Endpoint(
        subscription_id=row["subscription_id"],
        callback_url=row["callback_url"],
        api_key_params=tuple(
            SealedParam(name=param["name"], value=param["value"]) for param in row["api_key_params"]
        ),
        signing_secret=row["signing_secret"],
        previous_signing_secret=row["previous_signing_secret"],
        previous_secret_expires_at=row["previous_secret_expires_at"],
        is_active=row["is_active"],
        deleted_at=row["deleted_at"],
        headers=tuple(
            SealedHeader(name=header["name"], value=header["value"]) for header in row["headers"]
        ),
        max_deliveries_per_second=row["max_deliveries_per_second"],
    )


def outgoing_from_row(row: Row) -> OutgoingDelivery:
    """A ``load_attempt_contexts`` row, typed."""
    return OutgoingDelivery(
        id=row["id"],
        webhook_id=row["webhook_id"],
        company_id=row["company_id"],
        event_id=row["event_id"],
        webhook_key=row["webhook_key"],
        subject=row["subject"],
        status=DeliveryStatus(row["status"]),
        cycle=row["cycle"],
        attempt_count=row["attempt_count"],
        max_attempts=row["max_attempts"],
        body=bytes(row["body"]),
        endpoint=endpoint_from_row(row),
        loaded_at=row["loaded_at"],
        sequence=row.get("sequence"),
        traceparent=row.get("traceparent"),
    )


def opened_params(box: SecretBox, endpoint: Endpoint) -> list[tuple[str, str]]:
    """The endpoint's API key parameters, values decrypted."""
    return [
        (
            param.name,
            box.decrypt(param.value, context=param_context(endpoint.subscription_id, param.name)),
        )
        for param in endpoint.api_key_params
    ]


def opened_headers(box: SecretBox, endpoint: Endpoint) -> list[tuple[str, str]]:
    """The endpoint's custom headers, values decrypted."""
    return [
        (
            header.name,
            box.decrypt(
                header.value, context=header_context(endpoint.subscription_id, header.name)
            ),
        )
        for header in endpoint.headers
    ]
