"""The Mutation root: each maps input to one domain call and errors to userErrors."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import ParamSpec, Protocol, TypeVar

import strawberry

from app.core.errors import InvalidInput
from app.domain import events, portal, redelivery, subscriptions
from schema.context import Info
from schema.errors import FieldPaths
from schema.inputs import (
    CreateWebhookSubscriptionInput,
    PublishEventInput,
    UpdateWebhookSubscriptionInput,
)
from schema.payloads import (
    DeleteWebhookSubscriptionPayload,
    DeliveryPayload,
    PublishEventPayload,
    RedeliverFailedPayload,
    WebhookSubscriptionPayload,
    user_errors,
)
from schema.portal import (
    CreatePortalLinkInput,
    PortalLink,
    PortalLinkPayload,
    PortalSettings,
    PortalSettingsPayload,
)
from schema.types import Delivery, Event, UserError, WebhookSubscription

# Where each mutation's arguments hold the domain's fields, when not in the ``input``
# field of the same name.
WEBHOOK_IN_INPUT: FieldPaths = {"webhook_key": ("input", "webhook")}
SUBSCRIPTION_IN_INPUT: FieldPaths = {"subscription_id": ("input", "id")}
SUBSCRIPTION_BY_ID: FieldPaths = {"subscription_id": ("id",)}
SUBSCRIPTION_BY_SUBSCRIPTION_ID: FieldPaths = {"subscription_id": ("subscriptionId",)}
DELIVERY_BY_DELIVERY_ID: FieldPaths = {"delivery_id": ("deliveryId",)}
PORTAL_LINK_INPUT: FieldPaths = {"input": ("input",)}
EMBED_ORIGINS: FieldPaths = {"origins": ("origins",)}


Arguments = ParamSpec("Arguments")
Payload = TypeVar("Payload")
Payload_co = TypeVar("Payload_co", covariant=True)


class Refusal(Protocol[Payload_co]):
    """A payload type, built with userErrors alone."""

    def __call__(self, *, user_errors: list[UserError]) -> Payload_co: ...


Resolver = Callable[Arguments, Awaitable[Payload]]


def refusals_as(
    payload: Refusal[Payload], paths: FieldPaths
) -> Callable[[Resolver[Arguments, Payload]], Resolver[Arguments, Payload]]:
    """The resolver's InvalidInput becomes ``payload`` with its userErrors, each at the
    GraphQL path ``paths`` gives its domain field (schema/errors.py), in the API's wording."""

    def decorate(resolver: Resolver[Arguments, Payload]) -> Resolver[Arguments, Payload]:
        # Strawberry reads the arguments and the return type through the wrapper.
        @functools.wraps(resolver)
        async def resolve(*args: Arguments.args, **kwargs: Arguments.kwargs) -> Payload:
            try:
                return await resolver(*args, **kwargs)
            except InvalidInput as error:
                return payload(user_errors=user_errors(error.errors, paths))

        return resolve

    return decorate


@strawberry.type
class Mutation:
    @strawberry.mutation
    @refusals_as(WebhookSubscriptionPayload, WEBHOOK_IN_INPUT)
    async def create_webhook_subscription(
        self, info: Info, input: CreateWebhookSubscriptionInput
    ) -> WebhookSubscriptionPayload:
        viewer = info.context.require_company()
        services = info.context.services
        created, secret = await subscriptions.create_subscription(
            services.db,
            services.secret_box,
            info.context.callback_checks,
            viewer,
            input.to_domain(),
        )
        return WebhookSubscriptionPayload(
            subscription=WebhookSubscription.from_model(created), signing_secret=secret
        )

    @strawberry.mutation
    @refusals_as(WebhookSubscriptionPayload, SUBSCRIPTION_IN_INPUT)
    async def update_webhook_subscription(
        self, info: Info, input: UpdateWebhookSubscriptionInput
    ) -> WebhookSubscriptionPayload:
        viewer = info.context.require_company()
        services = info.context.services
        updated = await subscriptions.update_subscription(
            services.db,
            services.secret_box,
            info.context.callback_checks,
            viewer,
            str(input.id),
            input.to_domain(),
        )
        return WebhookSubscriptionPayload(subscription=WebhookSubscription.from_model(updated))

    @strawberry.mutation(
        description="Stops future deliveries; pending retries of it are cancelled; "
        "past deliveries stay queryable."
    )
    @refusals_as(DeleteWebhookSubscriptionPayload, SUBSCRIPTION_BY_ID)
    async def delete_webhook_subscription(
        self, info: Info, id: strawberry.ID
    ) -> DeleteWebhookSubscriptionPayload:
        viewer = info.context.require_company()
        services = info.context.services
        deleted = await subscriptions.delete_subscription(services.db, viewer, str(id))
        return DeleteWebhookSubscriptionPayload(deleted_id=strawberry.ID(deleted))

    @strawberry.mutation(
        description="New signing secret; the previous one keeps signing alongside for 24 hours."
    )
    @refusals_as(WebhookSubscriptionPayload, SUBSCRIPTION_BY_ID)
    async def rotate_webhook_subscription_secret(
        self, info: Info, id: strawberry.ID
    ) -> WebhookSubscriptionPayload:
        viewer = info.context.require_company()
        services = info.context.services
        rotated, secret = await subscriptions.rotate_secret(
            services.db, services.secret_box, viewer, str(id)
        )
        return WebhookSubscriptionPayload(
            subscription=WebhookSubscription.from_model(rotated), signing_secret=secret
        )

    @strawberry.mutation(
        description="Delivers a sample event of the subscription's webhook to its callback URL now."
    )
    @refusals_as(PublishEventPayload, SUBSCRIPTION_BY_SUBSCRIPTION_ID)
    async def send_test_event(
        self, info: Info, subscription_id: strawberry.ID
    ) -> PublishEventPayload:
        viewer = info.context.require_company()
        services = info.context.services
        event = await events.send_test_event(
            services.db, info.context.event_limits, viewer, str(subscription_id)
        )
        return PublishEventPayload(event=Event.from_model(event))

    @strawberry.mutation(
        description="Starts a fresh cycle of attempts for a delivery (same webhook-id, same body)."
    )
    @refusals_as(DeliveryPayload, DELIVERY_BY_DELIVERY_ID)
    async def redeliver(self, info: Info, delivery_id: strawberry.ID) -> DeliveryPayload:
        viewer = info.context.require_company()
        services = info.context.services
        delivery = await redelivery.redeliver(services.db, services.queue, viewer, str(delivery_id))
        return DeliveryPayload(delivery=Delivery.from_model(delivery))

    @strawberry.mutation(
        description="Redelivers every FAILED delivery of a subscription created at or "
        "after `since`."
    )
    @refusals_as(RedeliverFailedPayload, SUBSCRIPTION_BY_SUBSCRIPTION_ID)
    async def redeliver_failed(
        self, info: Info, subscription_id: strawberry.ID, since: datetime
    ) -> RedeliverFailedPayload:
        viewer = info.context.require_company()
        services = info.context.services
        count = await redelivery.redeliver_failed(
            services.db, services.queue, viewer, str(subscription_id), since
        )
        return RedeliverFailedPayload(count=count)

    @strawberry.mutation(
        description="Order system entry point: records the event and fans it out to every "
        "active subscription of that company and webhook, atomically."
    )
    @refusals_as(PublishEventPayload, WEBHOOK_IN_INPUT)
    async def publish_event(self, info: Info, input: PublishEventInput) -> PublishEventPayload:
        info.context.require_publisher()
        event = await events.publish_event(
            info.context.services.db, info.context.event_limits, input.to_domain()
        )
        return PublishEventPayload(event=Event.from_model(event))

    @strawberry.mutation(
        description="A single-use link that opens this company's portal (COMPANY keys only; "
        "a portal session cannot mint one). Put it in an iframe's src or open it; the "
        "session it opens acts as this company, READ_ONLY or FULL."
    )
    @refusals_as(PortalLinkPayload, PORTAL_LINK_INPUT)
    async def create_portal_link(
        self, info: Info, input: CreatePortalLinkInput | None = None
    ) -> PortalLinkPayload:
        viewer = info.context.require_company_key("portal links are minted by a key.")
        wanted = input or CreatePortalLinkInput()
        link = await portal.create_link(
            info.context.services.db,
            info.context.portal_limits,
            portal.grant_for(viewer, wanted.access),
            wanted.expires_in_seconds,
        )
        return PortalLinkPayload(link=PortalLink.from_model(link))

    @strawberry.mutation(
        description="Replaces the origins that may frame this company's portal: each exactly "
        "scheme://host[:port], https (http for localhost and 127.0.0.1), at most 20; [] "
        "forbids embedding. COMPANY keys only."
    )
    @refusals_as(PortalSettingsPayload, EMBED_ORIGINS)
    async def set_portal_embed_origins(
        self, info: Info, origins: list[str]
    ) -> PortalSettingsPayload:
        viewer = info.context.require_company_key("embed origins are set by a key.")
        saved = await portal.set_embed_origins(
            info.context.services.db, info.context.portal_limits, viewer, origins
        )
        return PortalSettingsPayload(portal_settings=PortalSettings(embed_origins=list(saved)))
