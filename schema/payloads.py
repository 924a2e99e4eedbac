"""Mutation payloads: the result, or userErrors and nothing written."""

from __future__ import annotations

import strawberry

from app.core.errors import UserError as DomainUserError
from schema.errors import FieldPaths, graphql_message, graphql_path
from schema.types import Delivery, Event, UserError, WebhookSubscription


def user_errors(errors: list[DomainUserError], paths: FieldPaths) -> list[UserError]:
    """The domain's errors at the GraphQL paths ``paths`` gives their fields, in the API's
    wording (schema/errors.py)."""
    return [
        UserError(
            field=graphql_path(error.field, paths),
            message=graphql_message(error),
            code=error.code,
        )
        for error in errors
    ]


@strawberry.type
class WebhookSubscriptionPayload:
    subscription: WebhookSubscription | None = None
    signing_secret: str | None = strawberry.field(
        default=None, description="Only on create and rotate: 'whsec_' + base64. Shown once."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeleteWebhookSubscriptionPayload:
    deleted_id: strawberry.ID | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class PublishEventPayload:
    event: Event | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeliveryPayload:
    delivery: Delivery | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RedeliverFailedPayload:
    count: int = 0
    user_errors: list[UserError] = strawberry.field(default_factory=list)
