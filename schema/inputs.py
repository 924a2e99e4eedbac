"""GraphQL input types, converted to the domain's values."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from app.core.validation import (
    MAX_DELIVERIES_PER_SECOND,
    MAX_HEADER_NAME,
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    MIN_DELIVERIES_PER_SECOND,
    RESERVED_HEADER_NAMES,
)
from app.domain.deliveries import DeliveryFilter as DomainDeliveryFilter
from app.domain.events import EventFilter as DomainEventFilter
from app.domain.events import NewEvent
from app.domain.subscriptions import UNCHANGED, NewSubscription, SubscriptionChanges
from schema.enums import DeliveryOrdering, DeliveryStatus

FILTER = (
    "Only events whose payload matches this filter are delivered (README, 'Content "
    'filters\'), e.g. {"order_status": {"$in": ["notified", "completed"]}}; '
    "null: every event."
)

RATE = (
    "At most this many deliveries a second to the callback URL, all workers together "
    f"(README, 'Delivery rate'); {MIN_DELIVERIES_PER_SECOND} to {MAX_DELIVERIES_PER_SECOND}; "
    "null: no limit."
)


@strawberry.input
class ApiKeyParamInput:
    name: str
    value: str


@strawberry.input
class HeaderInput:
    name: str = strawberry.field(description="An HTTP token, e.g. 'Authorization'.")
    value: str = strawberry.field(description="Printable ASCII; stored encrypted.")


def _params(
    params: list[ApiKeyParamInput] | list[HeaderInput] | None,
) -> list[tuple[str, str]] | None:
    return None if params is None else [(param.name, param.value) for param in params]


HEADERS_DESCRIPTION = (
    "Sent with every request (not signed). Names are case-insensitive and unique; "
    f"refused: {', '.join(RESERVED_HEADER_NAMES)}. At most {MAX_HEADERS}; names up to "
    f"{MAX_HEADER_NAME} characters, values up to {MAX_HEADER_VALUE}."
)


@strawberry.input
class CreateWebhookSubscriptionInput:
    webhook: str = strawberry.field(description="A key from webhookTypes.")
    callback_url: str
    notification_email: str
    api_key_params: list[ApiKeyParamInput] | None = strawberry.field(
        default_factory=list,
        description="Appended to the callback URL's query string on every request.",
    )
    is_active: bool | None = True
    description: str | None = None
    headers: list[HeaderInput] | None = strawberry.field(
        default_factory=list, description=HEADERS_DESCRIPTION
    )
    filter: JSON | None = strawberry.field(default=None, description=FILTER)
    max_deliveries_per_second: int | None = strawberry.field(default=None, description=RATE)
    ordering: DeliveryOrdering | None = strawberry.field(
        default=DeliveryOrdering.NONE,
        description="PER_SUBJECT: deliveries that share a subject go one after another, in "
        "publish order (README, 'Ordered delivery'). Null: NONE.",
    )

    def to_domain(self) -> NewSubscription:
        return NewSubscription(
            webhook_key=self.webhook,
            callback_url=self.callback_url,
            notification_email=self.notification_email,
            api_key_params=_params(self.api_key_params) or [],
            headers=_params(self.headers) or [],
            is_active=True if self.is_active is None else self.is_active,
            description=self.description,
            filter=self.filter,
            max_deliveries_per_second=self.max_deliveries_per_second,
            ordering=self.ordering or DeliveryOrdering.NONE,
        )


@strawberry.input
class UpdateWebhookSubscriptionInput:
    id: strawberry.ID
    callback_url: str | None = None
    notification_email: str | None = None
    api_key_params: list[ApiKeyParamInput] | None = strawberry.field(
        default=None, description="Replaces the whole list when given."
    )
    is_active: bool | None = None
    description: str | None = strawberry.UNSET
    headers: list[HeaderInput] | None = strawberry.field(
        default=None,
        description="Replaces the whole list when given (a way to rotate a value); "
        "absent keeps it.",
    )
    filter: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="Replaces the filter when given; null removes it."
    )
    max_deliveries_per_second: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="Replaces the delivery rate when given; null removes the limit. Attempts "
        "already waiting for a slot take one at the new rate.",
    )
    ordering: DeliveryOrdering | None = strawberry.field(
        default=None,
        description="Orders the deliveries made from now on; absent or null keeps it. "
        "Switched to NONE, the HELD deliveries are sent at once.",
    )

    def to_domain(self) -> SubscriptionChanges:
        return SubscriptionChanges(
            callback_url=self.callback_url,
            notification_email=self.notification_email,
            api_key_params=_params(self.api_key_params),
            headers=_params(self.headers),
            is_active=self.is_active,
            description=UNCHANGED if self.description is strawberry.UNSET else self.description,
            filter=UNCHANGED if self.filter is strawberry.UNSET else self.filter,
            max_deliveries_per_second=(
                UNCHANGED
                if self.max_deliveries_per_second is strawberry.UNSET
                else self.max_deliveries_per_second
            ),
            ordering=self.ordering,
        )


@strawberry.input
class WebhookSubscriptionFilter:
    webhook: str | None = None
    is_active: bool | None = None


@strawberry.input
class PublishEventInput:
    company_id: strawberry.ID
    webhook: str
    payload: JSON = strawberry.field(
        description="The webhook's data; becomes `data` in the delivered body. A JSON object."
    )
    subject: str | None = strawberry.field(
        default=None, description="What the event is about, e.g. the order id; filterable."
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Publishing twice with the same key for the same company returns the "
        "first event and delivers nothing new. Reusing a key with a different webhook, "
        "subject or payload is a DUPLICATE user error (payloads compare as JSON values).",
    )

    def to_domain(self) -> NewEvent:
        return NewEvent(
            company_id=str(self.company_id),
            webhook_key=self.webhook,
            payload=self.payload,
            subject=self.subject,
            idempotency_key=self.idempotency_key,
        )


@strawberry.input
class PublishEventsInput:
    events: list[PublishEventInput] = strawberry.field(
        description="At most 100 events, each published as publishEvent publishes one."
    )


@strawberry.input
class EventFilter:
    webhook: str | None = None
    subject: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def to_domain(self) -> DomainEventFilter:
        return DomainEventFilter(
            webhook_key=self.webhook,
            subject=self.subject,
            created_after=self.created_after,
            created_before=self.created_before,
        )


@strawberry.input
class DeliveryFilter:
    status: DeliveryStatus | None = None
    webhook: str | None = None
    subscription_id: strawberry.ID | None = None
    event_id: strawberry.ID | None = None
    subject: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def to_domain(self) -> DomainDeliveryFilter:
        return DomainDeliveryFilter(
            status=self.status,
            webhook_key=self.webhook,
            subscription_id=str(self.subscription_id) if self.subscription_id else None,
            event_id=str(self.event_id) if self.event_id else None,
            subject=self.subject,
            created_after=self.created_after,
            created_before=self.created_before,
        )
