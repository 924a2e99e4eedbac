"""The portal's GraphQL types, and the rule that a READ_ONLY portal session writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import strawberry
from graphql import ExecutionResult
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from app.domain.portal import PortalLink as DomainPortalLink
from schema.enums import PortalAccess
from schema.errors import forbidden
from schema.types import Company, UserError


@strawberry.input
class CreatePortalLinkInput:
    access: PortalAccess = PortalAccess.FULL
    expires_in_seconds: int | None = strawberry.field(
        default=None,
        description="How long the link may be opened; default and cap: "
        "WEBHOOKS_PORTAL_LINK_MAX_SECONDS (1 hour unless the operator changed it).",
    )


@strawberry.type(description="A single-use link that opens the company's portal.")
class PortalLink:
    url: str = strawberry.field(
        description="Open it once (e.g. as an iframe's src); it holds the only copy of its token."
    )
    expires_at: datetime
    access: PortalAccess
    session_expires_in_seconds: int = strawberry.field(
        description="How long the session the link opens lasts."
    )

    @classmethod
    def from_model(cls, link: DomainPortalLink) -> PortalLink:
        return cls(
            url=link.url,
            expires_at=link.expires_at,
            access=link.access,
            session_expires_in_seconds=link.session_expires_in_seconds,
        )


@strawberry.type
class PortalLinkPayload:
    link: PortalLink | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class PortalSettings:
    embed_origins: list[str] = strawberry.field(
        description="Origins allowed to frame the portal (CSP frame-ancestors); empty: none may."
    )


@strawberry.type
class PortalSettingsPayload:
    portal_settings: PortalSettings | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="The portal session making this call.")
class PortalSession:
    access: PortalAccess
    expires_at: datetime
    company: Company


class ReadOnlySessions(SchemaExtension):
    """A READ_ONLY portal session's mutations are refused before any resolver runs, so
    none can write, whatever mutations exist now or are added later."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        viewer = getattr(context, "viewer", None)
        if (
            viewer is not None
            and not viewer.may_write
            and self.execution_context.operation_type is OperationType.MUTATION
        ):
            self.execution_context.result = ExecutionResult(
                data=None, errors=[forbidden("This portal session is read-only.")]
            )
        yield
