"""The GraphQL request context: services, the authenticated viewer and the loaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strawberry.types import Info as StrawberryInfo

from app.core.viewer import Viewer
from app.domain.events import EventLimits
from app.domain.portal import PortalLimits
from app.domain.subscriptions import CallbackChecks
from app.store.services import Services
from schema.errors import forbidden, unauthenticated
from schema.loaders import Loaders


@dataclass
class Context:
    """What resolvers share. Over HTTP it lives for one request; over a websocket the
    transport keeps one for the whole connection, so the executor hands every operation
    and every subscription update a copy of its own (``fresh``), with new loaders."""

    services: Services
    viewer: Viewer | None
    request: Any = None
    response: Any = None
    connection_params: dict[str, Any] | None = None
    _loaders: Loaders | None = field(default=None, init=False, repr=False)

    @property
    def loaders(self) -> Loaders:
        """DataLoaders for this context, made on first use (the viewer is known by then:
        a websocket's arrives after its context was made)."""
        if self._loaders is None:
            self._loaders = Loaders(self.services.db, self.viewer)
        return self._loaders

    @property
    def event_limits(self) -> EventLimits:
        """What publishing reads of the settings (app/domain/events.py)."""
        return EventLimits.of(self.services.settings)

    @property
    def portal_limits(self) -> PortalLimits:
        """What minting portal links reads of the settings (app/domain/portal.py)."""
        return PortalLimits.of(self.services.settings)

    @property
    def callback_checks(self) -> CallbackChecks:
        """How callback URLs are checked (app/domain/subscriptions.py)."""
        return CallbackChecks.of(self.services.settings, self.services.resolver)

    def fresh(self) -> Context:
        """The same caller with loaders of their own: nothing cached carries over."""
        # Not dataclasses.replace, several times slower: this runs for every operation.
        # (tests/unit/test_context.py checks that every field is copied.)
        return Context(
            self.services, self.viewer, self.request, self.response, self.connection_params
        )

    def require_viewer(self) -> Viewer:
        if self.viewer is None:
            raise unauthenticated()
        return self.viewer

    def require_company(
        self, refusal: str = "PUBLISHER keys cannot manage subscriptions."
    ) -> Viewer:
        """The viewer, who must be a company's: PUBLISHER keys are refused with ``refusal``
        (why)."""
        viewer = self.require_viewer()
        if viewer.company_id is None:
            raise forbidden(f"This needs a COMPANY key; {refusal}")
        return viewer

    def require_company_key(self, refusal: str) -> Viewer:
        """A COMPANY key's viewer: a portal session is refused with ``refusal`` too (what
        a session could do with it would outlast or widen the session)."""
        viewer = self.require_company(refusal)
        if viewer.is_portal_session:
            raise forbidden(f"This needs a COMPANY key, not a portal session; {refusal}")
        return viewer

    def require_publisher(self) -> Viewer:
        viewer = self.require_viewer()
        if not viewer.is_publisher:
            raise forbidden("Only a PUBLISHER key (the order system) can publish events.")
        return viewer


Info = StrawberryInfo[Context, None]
