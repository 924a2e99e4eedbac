"""The Mutation root: each maps input to one domain call and errors to userErrors."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.core.errors import InvalidInput
from app.domain import events, redelivery, subscriptions
from schema.context import Info
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
from schema.types import Delivery, Event, WebhookSubscription


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_webhook_subscription(
        self, info: Info, input: CreateWebhookSubscriptionInput
    ) -> WebhookSubscriptionPayload:
        viewer = info.context.require_company()
        services = info.context.services
        try:
            created, secret = await subscriptions.create_subscription(
                services.db,
                services.secret_box,
                info.context.callback_checks,
                viewer,
                input.to_domain(),
            )
        except InvalidInput as error:
            return WebhookSubscriptionPayload(user_errors=user_errors(error.errors))
        return WebhookSubscriptionPayload(
            subscription=WebhookSubscription.from_model(created), signing_secret=secret
        )

    @strawberry.mutation
    async def update_webhook_subscription(
        self, info: Info, input: UpdateWebhookSubscriptionInput
    ) -> WebhookSubscriptionPayload:
        viewer = info.context.require_company()
        services = info.context.services
        try:
            updated = await subscriptions.update_subscription(
                services.db,
                services.secret_box,
                info.context.callback_checks,
                viewer,
                str(input.id),
                input.to_domain(),
            )
        except InvalidInput as error:
            return WebhookSubscriptionPayload(user_errors=user_errors(error.errors))
        return WebhookSubscriptionPayload(subscription=WebhookSubscription.from_model(updated))

    @strawberry.mutation(
        description="Stops future deliveries; pending retries of it are cancelled; "
        "past deliveries stay queryable."
    )
    async def delete_webhook_subscription(
        self, info: Info, id: strawberry.ID
    ) -> DeleteWebhookSubscriptionPayload:
        viewer = info.context.require_company()
        services = info.context.services
        try:
            deleted = await subscriptions.delete_subscription(services.db, viewer, str(id))
        except InvalidInput as error:
            return DeleteWebhookSubscriptionPayload(user_errors=user_errors(error.errors))
        return DeleteWebhookSubscriptionPayload(deleted_id=strawberry.ID(deleted))

    @strawberry.mutation(
        description="New signing secret; the previous one keeps signing alongside for 24 hours."
    )
    async def rotate_webhook_subscription_secret(
        self, info: Info, id: strawberry.ID
    ) -> WebhookSubscriptionPayload:
        viewer = info.context.require_company()
        services = info.context.services
        try:
            rotated, secret = await subscriptions.rotate_secret(
                services.db, services.secret_box, viewer, str(id)
            )
        except InvalidInput as error:
            return WebhookSubscriptionPayload(user_errors=user_errors(error.errors))
        return WebhookSubscriptionPayload(
            subscription=WebhookSubscription.from_model(rotated), signing_secret=secret
        )

    @strawberry.mutation(
        description="Delivers a sample event of the subscription's webhook to its callback URL now."
    )
    async def send_test_event(
        self, info: Info, subscription_id: strawberry.ID
    ) -> PublishEventPayload:
        viewer = info.context.require_company()
        services = info.context.services
        try:
            event = await events.send_test_event(
                services.db, info.context.event_limits, viewer, str(subscription_id)
            )
        except InvalidInput as error:
            return PublishEventPayload(user_errors=user_errors(error.errors))
        return PublishEventPayload(event=Event.from_model(event))

    @strawberry.mutation(
        description="Starts a fresh cycle of attempts for a delivery (same webhook-id, same body)."
    )
    async def redeliver(self, info: Info, delivery_id: strawberry.ID) -> DeliveryPayload:
        viewer = info.context.require_company()
        services = info.context.services
        try:
            delivery = await redelivery.redeliver(
                services.db, services.queue, viewer, str(delivery_id)
            )
        except InvalidInput as error:
            return DeliveryPayload(user_errors=user_errors(error.errors))
        return DeliveryPayload(delivery=Delivery.from_model(delivery))

    @strawberry.mutation(
        description="Redelivers every FAILED delivery of a subscription created at or "
        "after `since`."
    )
    async def redeliver_failed(
        self, info: Info, subscription_id: strawberry.ID, since: datetime
    ) -> RedeliverFailedPayload:
        viewer = info.context.require_company()
        services = info.context.services
        try:
            count = await redelivery.redeliver_failed(
                services.db, services.queue, viewer, str(subscription_id), since
            )
        except InvalidInput as error:
            return RedeliverFailedPayload(user_errors=user_errors(error.errors))
        return RedeliverFailedPayload(count=count)

    @strawberry.mutation(
        description="Order system entry point: records the event and fans it out to every "
        "active subscription of that company and webhook, atomically."
    )
    async def publish_event(self, info: Info, input: PublishEventInput) -> PublishEventPayload:
        info.context.require_publisher()
        try:
            event = await events.publish_event(
                info.context.services.db, info.context.event_limits, input.to_domain()
            )
        except InvalidInput as error:
            return PublishEventPayload(user_errors=user_errors(error.errors))
        return PublishEventPayload(event=Event.from_model(event))
