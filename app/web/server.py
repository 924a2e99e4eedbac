"""The HTTP application: its routes, its middleware, and the services' lifetime.

``build_app`` wires Starlette, the GraphQL app (``app.web.graphql_app``), the probes
(``app.web.probes``) and the exception handlers (``app.web.handlers``). The services are
opened in the lifespan (or handed in by tests), and the delivery worker can run in the
same process, supervised, as ``background``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp

from app.core.settings import Settings
from app.delivery.worker import WorkerHealth
from app.store.services import Services, open_services
from app.web import graphiql, probes
from app.web.graphql_app import WebhooksGraphQL
from app.web.handlers import EXCEPTION_HANDLERS
from app.web.isolation import RequestIsolation
from app.web.portal_access import PortalAccess
from app.web.refusals import BodyLimits, body_cap

ServicesFactory = Callable[[Settings], AbstractAsyncContextManager[Services]]


class ServicesHolder:
    """Where the lifespan puts the opened services for the request handlers."""

    def __init__(self) -> None:
        self._services: Services | None = None

    def get(self) -> Services:
        if self._services is None:
            raise RuntimeError("services are not open yet")
        return self._services

    def set(self, services: Services | None) -> None:
        self._services = services


def build_app(
    settings: Settings,
    *,
    services: Services | None = None,
    services_factory: ServicesFactory = open_services,
    background: Callable[[Services], AbstractAsyncContextManager[Any]] | None = None,
    worker_health: WorkerHealth | None = None,
) -> ASGIApp:
    """The ASGI app. ``services`` (tests) skips opening them; ``background`` runs beside."""
    holder = ServicesHolder()
    holder.set(services)  # ready at once when handed in (no lifespan needed)
    graphql = WebhooksGraphQL(holder.get, settings)
    portal = PortalAccess(holder.get, settings, graphql.admission)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if services is not None:
            async with _maybe(background, services):
                yield
            return
        async with services_factory(settings) as opened:
            holder.set(opened)
            async with _maybe(background, opened):
                yield
            holder.set(None)

    async def root(_: Request) -> Response:
        # Someone opening the bare address finds GraphiQL (or, in production, the API).
        return RedirectResponse("/graphql")

    ide_routes = (
        [] if settings.is_production else [Mount(graphiql.STATIC_URL, graphiql.static_files())]
    )
    starlette = Starlette(
        routes=[
            Route("/", root),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            *probes.routes(holder.get, worker_health),
            *portal.routes(),
            *ide_routes,
        ],
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
    )
    return RequestIsolation(
        BodyLimits(
            starlette, max_bytes=body_cap(settings), timeout_seconds=settings.body_timeout_seconds
        )
    )


@asynccontextmanager
async def _maybe(
    background: Callable[[Services], AbstractAsyncContextManager[Any]] | None,
    services: Services,
) -> AsyncIterator[None]:
    if background is None:
        yield
        return
    async with background(services):
        yield
