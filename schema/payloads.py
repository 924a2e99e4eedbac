"""Mutation payloads: the result, or userErrors and nothing written."""

from __future__ import annotations

import strawberry

from app.core.errors import UserError as DomainUserError
from app.core.filter_verdict import Verdict
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
class PublishEventsPayload:
    results: list[PublishEventPayload] = strawberry.field(
        default_factory=list,
        description="One per input event, in input order, each with its own userErrors "
        "(at input.events.<index>...). Empty when the batch itself was refused.",
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeliveryPayload:
    delivery: Delivery | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RedeliverFailedPayload:
    count: int = 0
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="A clause of a filter that failed, and why.")
class FilterMismatch:
    clause: list[str] = strawberry.field(
        description="Where the clause is in the filter, e.g. ['order_status', '$in']."
    )
    reason: str = strawberry.field(
        description='What was found, e.g. \'order_status is "scheduled", not one of '
        '["notified", "completed"]\'.'
    )


@strawberry.type
class SubscriptionFilterTest:
    matched: bool | None = strawberry.field(
        default=None,
        description="Whether the payload passes the filter, as the fan-out decides it; null "
        "when the input was refused (userErrors).",
    )
    reasons: list[str] = strawberry.field(
        default_factory=list,
        description="Why it matched, or why not: one line per clause that decided it.",
    )
    mismatches: list[FilterMismatch] = strawberry.field(
        default_factory=list, description="The clauses that failed, when it did not match."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)

    @classmethod
    def from_verdict(cls, verdict: Verdict) -> SubscriptionFilterTest:
        return cls(
            matched=verdict.matched,
            reasons=list(verdict.reasons),
            mismatches=[
                FilterMismatch(clause=[str(part) for part in line.where], reason=line.reason)
                for line in verdict.mismatches
            ],
        )
