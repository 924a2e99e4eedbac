"""The HTTP application: GraphQL on /graphql (HTTP and websocket), health and readiness.

``build_app`` wires Starlette, the Strawberry schema and the services. The services are
opened in the lifespan (or handed in by tests), and the delivery worker can run in the
same process, supervised, when ``with_worker`` is set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any, cast

import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, ExceptionHandler, Receive, Send
from starlette.types import Scope as Scope_
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UNSET, UnsetType

from app import graphiql, metrics
from app.api_keys import authenticate
from app.database import PUBLISHER_SCOPE, Scope, bind_scope
from app.migrations import own_migrations
from app.outages import RETRY_AFTER_SECONDS, UNAVAILABLE_MESSAGE
from app.rate_limit import RateLimit, TokenBuckets
from app.services import Services, open_services
from app.settings import Settings
from app.viewer import Viewer
from app.worker import WorkerHealth
from schema.context import Context
from schema.root import build_schema

logger = logging.getLogger(__name__)

READINESS_TIMEOUT_SECONDS = 2.0

ServicesFactory = Callable[[Settings], AbstractAsyncContextManager[Services]]


def bearer_key(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


class WebhooksGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app with our context: services, viewer, loaders."""

    def __init__(self, holder: ServicesHolder, settings: Settings) -> None:
        super().__init__(
            build_schema(production=settings.is_production),
            graphql_ide=None if settings.is_production else "graphiql",
            allow_queries_via_get=False,
        )
        self._holder = holder

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        services = self._holder.services
        viewer: Viewer | None = None
        if isinstance(request, WebSocket):
            # Browsers cannot send headers on websockets: the key arrives later, in the
            # connection_init payload (on_ws_connect).
            return Context(services=services, viewer=None, request=request, response=response)
        key = bearer_key(request.headers.get("authorization"))
        if key is not None:
            viewer = await authenticate(services.db, key)
        # Every query of this request now runs in the viewer's database scope (row-level
        # security); the request runs in its own task (see RequestIsolation), so the
        # binding ends with it.
        bind_scope(scope_for(viewer))
        return Context(services=services, viewer=viewer, request=request, response=response)

    async def render_graphql_ide(self, request: Request) -> Response:
        return graphiql.page()

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate a websocket from its connection_init payload, or reject it."""
        params = context.connection_params or {}
        key = bearer_key(str(params.get("authorization", "")))
        viewer = await authenticate(context.services.db, key) if key else None
        if viewer is None:
            raise ConnectionRejectionError({"message": "Missing or invalid API key."})
        context.viewer = viewer
        bind_scope(scope_for(viewer))  # inherited by the operations this connection starts
        return cast(UnsetType, UNSET)


def scope_for(viewer: Viewer | None) -> Scope:
    """The database scope of a caller; no key at all gets a scope that sees no tenant row."""
    if viewer is not None and viewer.is_publisher:
        return PUBLISHER_SCOPE
    return Scope("webhooks_api", viewer.company_id if viewer else None)


class RequestIsolation:
    """Run each request in a task of its own, so per-request context never leaks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope_, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def handle() -> None:
            await self.app(scope, receive, send)

        await asyncio.create_task(handle())


class ServicesHolder:
    """Where the lifespan puts the opened services for the request handlers."""

    def __init__(self) -> None:
        self._services: Services | None = None

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("services are not open yet")
        return self._services

    def set(self, services: Services | None) -> None:
        self._services = services


class BodySizeLimit:
    """Refuse request bodies over a cap with 413 before anything reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope_, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        too_large = started = False

        async def limited_receive() -> Any:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Any) -> None:
            nonlocal started
            # Starlette's error middleware answers the _TooLarge raised in the middle of
            # reading a chunked body with a 500 (then re-raises it): drop that answer so
            # the client gets the 413.
            if too_large:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            if started:
                raise
        if too_large and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope_, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {
                "errors": [
                    {
                        "message": f"Request body exceeds {self.max_bytes} bytes.",
                        "extensions": {"code": "TOO_LARGE"},
                    }
                ]
            },
            status_code=413,
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


async def database_unavailable(
    connection: Request | WebSocket, error: Exception
) -> Response | None:
    """503 with a GraphQL error when the database cannot be reached.

    Resolvers' errors are already GraphQL errors, but authentication runs before any
    resolver: without this, a request arriving during a database outage got a bare
    "Internal Server Error" once the pool gave up waiting for a connection. A websocket
    is closed with 1013 ("try again later").
    """
    logger.warning("database unavailable (%s)", type(error).__name__)
    if isinstance(connection, WebSocket):
        with suppress(RuntimeError):  # already closed
            await connection.close(code=1013)
        return None
    return JSONResponse(
        {
            "errors": [
                {
                    "message": UNAVAILABLE_MESSAGE,
                    "extensions": {"code": "UNAVAILABLE"},
                }
            ]
        },
        status_code=503,
        headers={"retry-after": str(RETRY_AFTER_SECONDS)},
    )


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
    graphql = WebhooksGraphQL(holder, settings)

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

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        checks = await readiness(holder, worker_health)
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    async def metrics_endpoint(_: Request) -> Response:
        body, content_type = await metrics.render(holder.services.db)
        return Response(body, media_type=content_type)

    ide_routes = (
        [] if settings.is_production else [Mount(graphiql.STATIC_URL, graphiql.static_files())]
    )
    starlette = Starlette(
        routes=[
            Route("/metrics", metrics_endpoint),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            *ide_routes,
            Route("/readyz", readyz),
        ],
        lifespan=lifespan,
        # PoolTimeout is an OperationalError too. (One handler for both connection kinds,
        # which Starlette's types keep apart.)
        exception_handlers={psycopg.OperationalError: cast(ExceptionHandler, database_unavailable)},
    )
    # The body cap leaves room for a maximal payload plus the document around it.
    max_body = max(settings.max_request_bytes, settings.max_payload_bytes + 64 * 1024)
    limited = BodySizeLimit(starlette, max_bytes=max_body)
    buckets = TokenBuckets(settings.rate_limit_per_second, settings.rate_limit_burst)
    return RequestIsolation(RateLimit(limited, buckets))


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


async def readiness(
    holder: ServicesHolder, worker_health: WorkerHealth | None = None
) -> dict[str, bool]:
    """Whether the database answers in time and is migrated, has had the resources for
    recent statements (no class-53 error lately, see app/outages.py), and the worker (if
    any) runs."""
    checks: dict[str, bool] = {}
    db = holder.services.db
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            applied = await db.applied_migrations()
        checks["database"] = True
        checks["migrations"] = {m.name for m in own_migrations()} <= applied
    except Exception:  # any failure means "not ready"; the reason goes to the log
        logger.warning("readiness: database check failed", exc_info=True)
        checks["database"] = False
        checks["migrations"] = False
    checks["resources"] = not db.resource_alarm.raised
    if worker_health is not None:
        checks["worker"] = worker_health.running
    return checks
