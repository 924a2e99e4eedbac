"""The Mutation root: each maps input to one domain call and errors to userErrors."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.core.errors import InvalidInput
from app.domain import events, redelivery, subscriptions
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
from schema.types import Delivery, Event, WebhookSubscription

# Where each mutation's arguments hold the domain's fields, when not in the ``input``
# field of the same name.
WEBHOOK_IN_INPUT: FieldPaths = {"webhook_key": ("input", "webhook")}
SUBSCRIPTION_IN_INPUT: FieldPaths = {"subscription_id": ("input", "id")}
SUBSCRIPTION_BY_ID: FieldPaths = {"subscription_id": ("id",)}
SUBSCRIPTION_BY_SUBSCRIPTION_ID: FieldPaths = {"subscription_id": ("subscriptionId",)}
DELIVERY_BY_DELIVERY_ID: FieldPaths = {"delivery_id": ("deliveryId",)}


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_webhook_subscription(
        self, info: Info, input: CreateWebhookSubscriptionInput
    ) -> WebhookSubscriptionPayload:
        company_id = info.context.require_company()
        try:
            created, secret = await subscriptions.create_subscription(
                info.context.services, company_id, input.to_domain()
            )
        except InvalidInput as error:
            return WebhookSubscriptionPayload(
                user_errors=user_errors(error.errors, WEBHOOK_IN_INPUT)
            )
        return WebhookSubscriptionPayload(
            subscription=WebhookSubscription.from_model(created), signing_secret=secret
        )

    @strawberry.mutation
    async def update_webhook_subscription(
        self, info: Info, input: UpdateWebhookSubscriptionInput
    ) -> WebhookSubscriptionPayload:
        company_id = info.context.require_company()
        try:
            updated = await subscriptions.update_subscription(
                info.context.services, company_id, str(input.id), input.to_domain()
            )
        except InvalidInput as error:
            return WebhookSubscriptionPayload(
                user_errors=user_errors(error.errors, SUBSCRIPTION_IN_INPUT)
            )
        return WebhookSubscriptionPayload(subscription=WebhookSubscription.from_model(updated))

    @strawberry.mutation(
        description="Stops future deliveries; pending retries of it are cancelled; "
        "past deliveries stay queryable."
    )
    async def delete_webhook_subscription(
        self, info: Info, id: strawberry.ID
    ) -> DeleteWebhookSubscriptionPayload:
        company_id = info.context.require_company()
        try:
            deleted = await subscriptions.delete_subscription(
                info.context.services, company_id, str(id)
            )
        except InvalidInput as error:
            return DeleteWebhookSubscriptionPayload(
                user_errors=user_errors(error.errors, SUBSCRIPTION_BY_ID)
            )
        return DeleteWebhookSubscriptionPayload(deleted_id=strawberry.ID(deleted))

    @strawberry.mutation(
        description="New signing secret; the previous one keeps signing alongside for 24 hours."
    )
    async def rotate_webhook_subscription_secret(
        self, info: Info, id: strawberry.ID
    ) -> WebhookSubscriptionPayload:
        company_id = info.context.require_company()
        try:
            rotated, secret = await subscriptions.rotate_secret(
                info.context.services, company_id, str(id)
            )
        except InvalidInput as error:
            return WebhookSubscriptionPayload(
                user_errors=user_errors(error.errors, SUBSCRIPTION_BY_ID)
            )
        return WebhookSubscriptionPayload(
            subscription=WebhookSubscription.from_model(rotated), signing_secret=secret
        )

    @strawberry.mutation(
        description="Delivers a sample event of the subscription's webhook to its callback URL now."
    )
    async def send_test_event(
        self, info: Info, subscription_id: strawberry.ID
    ) -> PublishEventPayload:
        company_id = info.context.require_company()
        try:
            event = await events.send_test_event(
                info.context.services, company_id, str(subscription_id)
            )
        except InvalidInput as error:
            return PublishEventPayload(
                user_errors=user_errors(error.errors, SUBSCRIPTION_BY_SUBSCRIPTION_ID)
            )
        return PublishEventPayload(event=Event.from_model(event))

    @strawberry.mutation(
        description="Starts a fresh cycle of attempts for a delivery (same webhook-id, same body)."
    )
    async def redeliver(self, info: Info, delivery_id: strawberry.ID) -> DeliveryPayload:
        company_id = info.context.require_company()
        try:
            delivery = await redelivery.redeliver(
                info.context.services, company_id, str(delivery_id)
            )
        except InvalidInput as error:
            return DeliveryPayload(user_errors=user_errors(error.errors, DELIVERY_BY_DELIVERY_ID))
        return DeliveryPayload(delivery=Delivery.from_model(delivery))

    @strawberry.mutation(
        description="Redelivers every FAILED delivery of a subscription created at or "
        "after `since`."
    )
    async def redeliver_failed(
        self, info: Info, subscription_id: strawberry.ID, since: datetime
    ) -> RedeliverFailedPayload:
        company_id = info.context.require_company()
        try:
            count = await redelivery.redeliver_failed(
                info.context.services, company_id, str(subscription_id), since
            )
        except InvalidInput as error:
            return RedeliverFailedPayload(
                user_errors=user_errors(error.errors, SUBSCRIPTION_BY_SUBSCRIPTION_ID)
            )
        return RedeliverFailedPayload(count=count)

    @strawberry.mutation(
        description="Order system entry point: records the event and fans it out to every "
        "active subscription of that company and webhook, atomically."
    )
    async def publish_event(self, info: Info, input: PublishEventInput) -> PublishEventPayload:
        info.context.require_publisher()
        try:
            event = await events.publish_event(info.context.services, input.to_domain())
        except InvalidInput as error:
            return PublishEventPayload(user_errors=user_errors(error.errors, WEBHOOK_IN_INPUT))
        return PublishEventPayload(event=Event.from_model(event))
