"""The Query root: reads, each confined to the viewer's company (PUBLISHER: all companies)."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from app.core.pagination import page_request
from app.domain import deliveries, events, portal, subscription_filters, subscriptions
from schema.connections import (
    DeliveryConnection,
    EventConnection,
    WebhookSubscriptionConnection,
    delivery_connection,
)
from schema.context import Info
from schema.errors import FieldPaths, arguments_checked
from schema.inputs import DeliveryFilter, EventFilter, WebhookSubscriptionFilter
from schema.mutation import refusals_as
from schema.payloads import SubscriptionFilterTest
from schema.portal import PortalSession, PortalSettings
from schema.types import (
    ApiKeyRole,
    Company,
    Delivery,
    Event,
    Viewer,
    WebhookSubscription,
    WebhookType,
)

# testSubscriptionFilter's arguments, by the domain's names.
FILTER_TEST_ARGUMENTS: FieldPaths = {
    "filter": ("filter",),
    "payload": ("payload",),
    "webhook_key": ("webhook",),
    "subscription_id": ("subscriptionId",),
}


@strawberry.type
class Query:
    @strawberry.field
    def viewer(self, info: Info) -> Viewer:  # no I/O: a coroutine would only cost
        viewer = info.context.require_viewer()
        company = None
        if viewer.company_id is not None:
            company = Company(id=strawberry.ID(viewer.company_id), name=viewer.company_name or "")
        return Viewer(role=ApiKeyRole(viewer.role), company=company)

    @strawberry.field(description="The portal session making this call; null for API keys.")
    def portal_session(self, info: Info) -> PortalSession | None:
        viewer = info.context.require_viewer()
        if viewer.portal is None or viewer.company_id is None:
            return None
        return PortalSession(
            access=viewer.portal.access,
            expires_at=viewer.portal.expires_at,
            company=Company(id=strawberry.ID(viewer.company_id), name=viewer.company_name or ""),
        )

    @strawberry.field(description="The company's portal settings (COMPANY callers).")
    async def portal_settings(self, info: Info) -> PortalSettings:
        viewer = info.context.require_company("portal settings are a company's.")
        origins = await portal.embed_origins(info.context.services.db, viewer)
        return PortalSettings(embed_origins=list(origins))

    @strawberry.field(
        description="The catalogue of webhooks a company can subscribe to (the 'webhook list')."
    )
    async def webhook_types(self, info: Info) -> list[WebhookType]:
        info.context.require_viewer()
        found = await info.context.loaders.webhook_types()
        # What the order system publishes first (the webhooks a company came for), then the
        # operator events; by key within each.
        listed = [WebhookType.from_model(webhook) for webhook in found.values()]
        return sorted(listed, key=lambda webhook: (webhook.operator_event, webhook.key))

    @strawberry.field(description="One webhook of the catalogue by key, e.g. ORDER_STATUS.")
    async def webhook_type(self, info: Info, key: str) -> WebhookType | None:
        info.context.require_viewer()
        found = (await info.context.loaders.webhook_types()).get(key)
        return WebhookType.from_model(found) if found else None

    @strawberry.field(description="The viewer's company's subscriptions, newest first.")
    async def webhook_subscriptions(
        self,
        info: Info,
        first: int | None = 50,
        after: str | None = None,
        filter: WebhookSubscriptionFilter | None = None,
    ) -> WebhookSubscriptionConnection:
        viewer = info.context.require_company()
        with arguments_checked():
            page = await subscriptions.list_subscriptions(
                info.context.services.db,
                viewer,
                page_request(first, after),
                webhook_key=filter.webhook if filter else None,
                is_active=filter.is_active if filter else None,
            )
        return WebhookSubscriptionConnection.from_page(page, WebhookSubscription.from_model)

    @strawberry.field
    async def webhook_subscription(
        self, info: Info, id: strawberry.ID
    ) -> WebhookSubscription | None:
        viewer = info.context.require_company()
        found = await subscriptions.get_subscription(info.context.services.db, viewer, str(id))
        return WebhookSubscription.from_model(found) if found else None

    @strawberry.field(description="Newest first. `first` is capped at 100.")
    async def events(
        self,
        info: Info,
        first: int | None = 50,
        after: str | None = None,
        filter: EventFilter | None = None,
    ) -> EventConnection:
        viewer = info.context.require_viewer()
        with arguments_checked():
            page = await events.list_events(
                info.context.services.db,
                viewer,
                page_request(first, after),
                filter.to_domain() if filter else events.EventFilter(),
            )
        return EventConnection.from_page(page, Event.from_model)

    @strawberry.field
    async def event(self, info: Info, id: strawberry.ID) -> Event | None:
        viewer = info.context.require_viewer()
        found = await events.get_event(info.context.services.db, viewer, str(id))
        return Event.from_model(found) if found else None

    @strawberry.field(description="Newest first. `first` is capped at 100.")
    async def deliveries(
        self,
        info: Info,
        first: int | None = 50,
        after: str | None = None,
        filter: DeliveryFilter | None = None,
    ) -> DeliveryConnection:
        viewer = info.context.require_viewer()
        with arguments_checked():
            page = await deliveries.list_deliveries(
                info.context.services.db,
                viewer,
                page_request(first, after),
                filter.to_domain() if filter else deliveries.DeliveryFilter(),
            )
        return await delivery_connection(info, page)

    @strawberry.field
    async def delivery(self, info: Info, id: strawberry.ID) -> Delivery | None:
        viewer = info.context.require_viewer()
        found = await deliveries.get_delivery(info.context.services.db, viewer, str(id))
        return Delivery.from_model(found) if found else None

    @strawberry.field(
        description="Tests a content filter on a payload before saving it, or a saved "
        "subscription's filter (subscriptionId): matched or not, and why. The payload is "
        "an event's data; omitted, the webhook's sample payload. The webhook defaults to the "
        "subscription's, else ORDER_STATUS. COMPANY keys only."
    )
    @refusals_as(SubscriptionFilterTest, FILTER_TEST_ARGUMENTS)
    async def test_subscription_filter(
        self,
        info: Info,
        filter: JSON | None = None,
        subscription_id: strawberry.ID | None = None,
        payload: JSON | None = None,
        webhook: str | None = None,
    ) -> SubscriptionFilterTest:
        viewer = info.context.require_company(
            "filters belong to a company's subscriptions, which PUBLISHER keys do not read."
        )
        verdict = await subscription_filters.try_filter(
            info.context.services.db,
            viewer,
            info.context.event_limits.max_payload_bytes,
            subscription_filters.FilterTrial(
                filter=filter,
                subscription_id=None if subscription_id is None else str(subscription_id),
                payload=payload,
                webhook_key=webhook,
            ),
        )
        return SubscriptionFilterTest.from_verdict(verdict)
