"""The GraphQL request context: services, the authenticated viewer and the loaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strawberry.types import Info as StrawberryInfo

from app.services import Services
from app.viewer import Viewer
from schema.errors import forbidden, unauthenticated
from schema.loaders import Loaders


@dataclass
class Context:
    services: Services
    viewer: Viewer | None
    request: Any = None
    response: Any = None
    connection_params: dict[str, Any] | None = None
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.services)

    def require_viewer(self) -> Viewer:
        if self.viewer is None:
            raise unauthenticated()
        return self.viewer

    def require_company(self) -> str:
        """The viewer's company; PUBLISHER keys cannot manage subscriptions."""
        viewer = self.require_viewer()
        if viewer.company_id is None:
            raise forbidden("This needs a COMPANY key; PUBLISHER keys cannot manage subscriptions.")
        return viewer.company_id

    def require_publisher(self) -> Viewer:
        viewer = self.require_viewer()
        if not viewer.is_publisher:
            raise forbidden("Only a PUBLISHER key (the order system) can publish events.")
        return viewer


Info = StrawberryInfo[Context, None]
