"""GraphQL object types: thin views over the domain's frozen dataclasses."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Mapping
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON

from app.core.operator_events import may_report_on
from app.core.pagination import page_request
from app.domain import companies, deliveries, events, subscriptions, webhook_types
from schema.context import Info
from schema.enums import DeliveryOrdering, DeliveryStatus, UserErrorCode
from schema.errors import arguments_checked
from schema.loaders import SubscriptionPage

if TYPE_CHECKING:
    from schema.connections import DeliveryConnection


@strawberry.enum(description="What an API key may do.")
class ApiKeyRole(Enum):
    COMPANY = "COMPANY"
    PUBLISHER = "PUBLISHER"


def _json(value: Any) -> JSON:
    return JSON(value)


@strawberry.type
class Company:
    id: strawberry.ID
    name: str

    @classmethod
    def from_model(cls, company: companies.Company) -> Company:
        return cls(id=strawberry.ID(company.id), name=company.name)


@strawberry.type
class Viewer:
    role: ApiKeyRole
    company: Company | None = strawberry.field(description="Null for PUBLISHER keys.")


@strawberry.type(description="One value of a webhook's status field, and what it means.")
class WebhookStatusValue:
    value: str = strawberry.field(description="As payloads carry it, e.g. 'scheduled'.")
    description: str | None


@strawberry.type
class WebhookType:
    key: str = strawberry.field(
        description="Stable key used in the API and in payloads, e.g. ORDER_STATUS."
    )
    name: str = strawberry.field(description="Human name, e.g. 'Order Status'.")
    description: str
    sample_payload: JSON = strawberry.field(
        description="A payload that matches `schema`, with invented values; test events "
        "(sendTestEvent) carry it."
    )
    schema: JSON = strawberry.field(
        description="The JSON Schema (draft 2020-12) every payload of this webhook matches; "
        "publishEvent refuses others (SCHEMA_MISMATCH). Payloads may carry fields it does "
        "not list: receivers ignore those they do not know."
    )
    subject_pointer: str | None = strawberry.field(
        description="JSON pointer to the payload value that is an event's subject when the "
        "publisher gives none, e.g. /order_id: the subject of an ORDER_STATUS event is the "
        "order id, as a string. Null: the subject is only what the publisher gives."
    )
    status_pointer: str | None = strawberry.field(
        description="JSON pointer to the payload's status field, e.g. /order_status; "
        "`statuses` lists its values."
    )
    statuses: list[WebhookStatusValue] = strawberry.field(
        description="The values of the status field, each with its meaning, as the schema "
        "lists them; empty without a status field."
    )
    operator_event: bool = strawberry.field(
        description="True for the service's own events about a company's deliveries "
        "(DELIVERY_FAILED, SUBSCRIPTION_DEACTIVATED, SUBSCRIPTION_RECOVERED): emitted by the "
        "service, never published by the order system. The catalogue lists them last."
    )

    @classmethod
    def from_model(cls, webhook: webhook_types.WebhookType) -> WebhookType:
        return cls(
            operator_event=not may_report_on(webhook.key),
            key=webhook.key,
            name=webhook.name,
            description=webhook.description,
            sample_payload=_json(webhook.sample_payload),
            schema=_json(webhook.payload_schema),
            subject_pointer=webhook.subject_pointer,
            status_pointer=webhook.status_pointer,
            statuses=[
                WebhookStatusValue(value=status.value, description=status.description)
                for status in webhook.statuses
            ],
        )


@strawberry.type
class ApiKeyParam:
    name: str
    value_hint: str = strawberry.field(
        description="Masked value, e.g. '••••3f9a'; the full value is never returned."
    )


@strawberry.type(description="A custom header sent with every request of a subscription.")
class HeaderHint:
    name: str
    value_hint: str = strawberry.field(
        description="Masked value, e.g. '••••3f9a'; the full value is never returned."
    )


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(
    description="A company's callback for a webhook. Its configuration (callbackUrl, "
    "notificationEmail, apiKeyParams, headers, description, filter, "
    "maxDeliveriesPerSecond, ordering) is for COMPANY keys: "
    "FORBIDDEN for PUBLISHER keys, which reach a subscription only through a delivery."
)
class WebhookSubscription:
    # A PUBLISHER key's loader brings the summary only (app/domain/subscriptions.py).
    model: strawberry.Private[subscriptions.Subscription | subscriptions.SubscriptionSummary]
    id: strawberry.ID

    @strawberry.field(description="Without the API key parameters.")
    def callback_url(self, info: Info) -> str:
        return self._configuration(info).callback_url

    @strawberry.field
    def notification_email(self, info: Info) -> str:
        return self._configuration(info).notification_email

    @strawberry.field
    def api_key_params(self, info: Info) -> list[ApiKeyParam]:
        return [
            ApiKeyParam(name=param.name, value_hint=param.value_hint)
            for param in self._configuration(info).api_key_params
        ]

    is_active: bool

    @strawberry.field
    def description(self, info: Info) -> str | None:
        return self._configuration(info).description

    @strawberry.field(description="Custom headers, values masked.")
    def headers(self, info: Info) -> list[HeaderHint]:
        return [
            HeaderHint(name=header.name, value_hint=header.value_hint)
            for header in self._configuration(info).headers
        ]

    @strawberry.field(
        description="Its content filter as saved (keys may come back in another order); "
        "null: it receives every event of its webhook."
    )
    def filter(self, info: Info) -> JSON | None:
        found = self._configuration(info).filter
        return None if found is None else _json(found)

    @strawberry.field(
        description="At most this many deliveries a second go to its callback URL (README, "
        "'Delivery rate'); null: no limit."
    )
    def max_deliveries_per_second(self, info: Info) -> int | None:
        return self._configuration(info).max_deliveries_per_second

    @strawberry.field(
        description="Whether deliveries that share a subject go strictly one after another "
        "(README, 'Ordered delivery')."
    )
    def ordering(self, info: Info) -> DeliveryOrdering:
        return self._configuration(info).ordering

    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(
        cls, model: subscriptions.Subscription | subscriptions.SubscriptionSummary
    ) -> WebhookSubscription:
        return cls(
            model=model,
            id=strawberry.ID(str(model.id)),
            is_active=model.is_active,
            created_at=model.created_at,
            updated_at=model.updated_at,
        )

    def _configuration(self, info: Info) -> subscriptions.Subscription:
        info.context.require_company("PUBLISHER keys cannot read a subscription's configuration.")
        if not isinstance(self.model, subscriptions.Subscription):
            raise RuntimeError("a subscription summary has no configuration to show")
        return self.model

    @strawberry.field
    async def webhook(self, info: Info) -> WebhookType:
        return WebhookType.from_model(
            await info.context.loaders.webhook_type(self.model.webhook_key)
        )

    @strawberry.field(description="This subscription's deliveries, newest first.")
    async def deliveries(
        self,
        info: Info,
        first: int | None = 50,
        after: str | None = None,
        status: DeliveryStatus | None = None,
    ) -> Annotated[DeliveryConnection, strawberry.lazy("schema.connections")]:
        from schema.connections import delivery_connection

        viewer = info.context.require_viewer()
        with arguments_checked():
            request = page_request(first, after)
        # Batched: under a list of subscriptions (a page of deliveries, each with its
        # subscription) all their pages come in one query.
        page = await info.context.loaders.deliveries_of_subscription.load(
            SubscriptionPage(
                viewer,
                self.model.id,
                request,
                status,
            )
        )
        return await delivery_connection(info, page)


# Never built either: DeliveryAttempt.request gives the domain's
# app.domain.deliveries.SentRequest (its headers the domain's Header values), so these
# fields are attributes of theirs.
@strawberry.type(description="One HTTP header as it was sent.")
class HttpHeader:
    name: str
    value: str = strawberry.field(
        description="As sent, but a subscription's custom header shows '••••' for its value."
    )


@strawberry.type(description="The request one attempt POSTed, as it was sent.")
class AttemptRequest:
    event_id: strawberry.Private[uuid.UUID]
    url: str = strawberry.field(
        description="Where it was POSTed, API key parameter values masked ('••••')."
    )
    headers: list[HttpHeader] = strawberry.field(
        description="In the order sent: the subscription's custom headers (values masked), "
        "then content-type, user-agent, webhook-id, webhook-timestamp, webhook-signature "
        "(the signature sent, verifiable with the subscription's secret of the time), "
        "webhook-attempt, on an ordered subscription webhook-sequence, and last the "
        "traceparent of the attempt's span when tracing sent one (in place of a custom "
        "header of that name)."
    )

    @strawberry.field(
        description="The exact bytes sent (UTF-8 JSON), as text: the same on every attempt."
    )
    async def body(self, info: Info) -> str:
        body = await info.context.loaders.event_body.load(self.event_id)
        if body is None:
            # Retention dropped it between loading the attempt and reading the body.
            raise GraphQLError(
                "The delivered body was removed by retention meanwhile.",
                extensions={"code": "NOT_FOUND"},
            )
        return body


# Never built: Delivery.attempts hands over the domain's app.domain.deliveries.Attempt values
# themselves (500 conversions per page of FAILED deliveries saved), so every field here
# must be an attribute of the same name there, and ``request``, the one resolved, reads
# only those (tests/unit/test_schema_types.py).
@strawberry.type
class DeliveryAttempt:
    delivery_id: strawberry.Private[uuid.UUID]
    number: int = strawberry.field(description="1 to maxAttempts within its cycle.")
    cycle: int = strawberry.field(
        description="1 for the original cycle of attempts, 2 for the first redelivery, ..."
    )
    started_at: datetime
    duration_ms: int
    response_status: int | None = strawberry.field(
        description="Null when no response arrived (timeout, refused, TLS error...)."
    )
    response_body: str | None = strawberry.field(
        description="At most the first 4 KiB of the response body. Null for PUBLISHER keys, "
        "which do not read what receivers answer."
    )
    error: str | None = strawberry.field(
        description="Why it failed, in words: 'timed out after 15 s', 'connection refused', "
        "'redirect (301) not followed', 'HTTP 500'. Null for PUBLISHER keys (it can name "
        "the callback's host and quote the receiver's answer)."
    )
    succeeded: bool
    url: str | None = strawberry.field(
        description="Where this attempt was POSTed, API key parameter values masked. Null "
        "for PUBLISHER keys."
    )

    @strawberry.field(
        description="The request as it was sent: URL, headers, body. Null for PUBLISHER "
        "keys, for an attempt that sent nothing (a delivery given up), for attempts recorded "
        "before requests were, and once retention has dropped the delivered body.",
        graphql_type=AttemptRequest | None,
    )
    async def request(self, info: Info) -> deliveries.SentRequest | None:
        # Loaded only when asked for: the attempts of a page read no more than before.
        # Without a url, the viewer reads no requests (PUBLISHER keys) or none was kept.
        if self.url is None:
            return None
        delivery = await info.context.loaders.sent_delivery.load(self.delivery_id)
        attempt = cast(deliveries.Attempt, self)
        return None if delivery is None else deliveries.sent_request(attempt, delivery)


@strawberry.type
class Delivery:
    model: strawberry.Private[deliveries.Delivery]
    # Its attempts when they were loaded with its page (see ``attempts``), else None.
    loaded_attempts: strawberry.Private[list[deliveries.Attempt] | None]
    id: strawberry.ID
    webhook_id: str = strawberry.field(
        description="The `webhook-id` header value; the same on every attempt and redelivery."
    )
    status: DeliveryStatus
    cycle: int = strawberry.field(description="1, plus one for each redelivery.")
    attempt_count: int = strawberry.field(description="Attempts made in the current cycle.")
    max_attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_response_status: int | None
    created_at: datetime
    completed_at: datetime | None
    sequence: int | None = strawberry.field(
        description="On a PER_SUBJECT subscription, its number among the deliveries of its "
        "subject (1, 2, ...: the order they are sent in), sent as the `webhook-sequence` "
        "header; null otherwise (and for events without a subject)."
    )

    @classmethod
    def from_model(
        cls,
        model: deliveries.Delivery,
        attempts: Mapping[uuid.UUID, list[deliveries.Attempt]] | None = None,
    ) -> Delivery:
        """The delivery; ``attempts`` are those of its page, when loaded with it."""
        return cls(
            model=model,
            loaded_attempts=None if attempts is None else attempts.get(model.id, []),
            id=strawberry.ID(str(model.id)),
            webhook_id=model.webhook_id,
            status=DeliveryStatus(model.status),
            cycle=model.cycle,
            attempt_count=model.attempt_count,
            max_attempts=model.max_attempts,
            next_attempt_at=model.next_attempt_at,
            last_attempt_at=model.last_attempt_at,
            last_response_status=model.last_response_status,
            created_at=model.created_at,
            completed_at=model.completed_at,
            sequence=model.sequence,
        )

    @strawberry.field(
        description="For a HELD delivery, the delivery of its subject being sent now, which "
        "it waits for (the ones between them wait too); null when not HELD."
    )
    async def waiting_for(self, info: Info) -> Delivery | None:
        if self.model.status != DeliveryStatus.HELD or self.model.subject is None:
            return None
        head = await info.context.loaders.queue_head.load(
            (self.model.subscription_id, self.model.subject)
        )
        return None if head is None else Delivery.from_model(head)

    @strawberry.field
    async def event(self, info: Info) -> Event:
        event = await info.context.loaders.event.load(self.model.event_id)
        if event is None:
            raise RuntimeError(f"the event of delivery {self.model.id} is not visible")
        return Event.from_model(event)

    @strawberry.field
    async def subscription(self, info: Info) -> WebhookSubscription:
        model = await info.context.loaders.subscription.load(self.model.subscription_id)
        if model is None:
            raise RuntimeError(f"the subscription of delivery {self.model.id} is not visible")
        return WebhookSubscription.from_model(model)

    @strawberry.field(
        description="Oldest first, across cycles.", graphql_type=list[DeliveryAttempt]
    )
    def attempts(
        self, info: Info
    ) -> list[deliveries.Attempt] | Awaitable[list[deliveries.Attempt]]:
        # Not a coroutine when the page brought them: an awaitable field makes graphql-core
        # wait for each delivery of a page separately (a task each), which cost more than
        # the attempts themselves. Otherwise batched with the other deliveries' (DataLoader).
        if self.loaded_attempts is not None:
            return self.loaded_attempts
        return self._load_attempts(info)

    async def _load_attempts(self, info: Info) -> list[deliveries.Attempt]:
        return await info.context.loaders.attempts_of_delivery.load(self.model.id)


@strawberry.type
class Event:
    model: strawberry.Private[events.Event]
    id: strawberry.ID
    subject: str | None
    payload: JSON
    idempotency_key: str | None
    is_test: bool = strawberry.field(description="True for events made by sendTestEvent.")
    created_at: datetime

    @classmethod
    def from_model(cls, model: events.Event) -> Event:
        return cls(
            model=model,
            id=strawberry.ID(str(model.id)),
            subject=model.subject,
            payload=_json(model.payload),
            idempotency_key=model.idempotency_key,
            is_test=model.is_test,
            created_at=model.created_at,
        )

    @strawberry.field
    async def company(self, info: Info) -> Company:
        company = await info.context.loaders.company.load(self.model.company_id)
        if company is None:
            raise RuntimeError(f"company {self.model.company_id} is not visible")
        return Company.from_model(company)

    @strawberry.field
    async def webhook(self, info: Info) -> WebhookType:
        return WebhookType.from_model(
            await info.context.loaders.webhook_type(self.model.webhook_key)
        )

    @strawberry.field
    async def deliveries(self, info: Info) -> list[Delivery]:
        found = await info.context.loaders.deliveries_of_event.load(self.model.id)
        return [Delivery.from_model(delivery) for delivery in found]


@strawberry.type
class UserError:
    field: list[str] | None = strawberry.field(
        description="Path to the offending input field, e.g. ['input', 'callbackUrl']."
    )
    message: str
    code: UserErrorCode
