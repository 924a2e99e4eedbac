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
from datetime import timedelta
from typing import Any, cast

import psycopg
from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, ExceptionHandler, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from app.core.outages import RETRY_AFTER_SECONDS, UNAVAILABLE_MESSAGE
from app.core.settings import Settings
from app.core.viewer import Viewer
from app.delivery import metrics
from app.delivery.worker import WorkerHealth
from app.domain.api_keys import (
    AmbiguousCredentials,
    authenticate,
    connection_authorization,
    presented_key,
)
from app.store.database import PUBLISHER_SCOPE, RowScope, bind_scope, scoped
from app.store.migrations import own_migrations
from app.store.services import Services, open_services
from app.web import graphiql, request_json
from app.web.rate_limit import Admission, RateLimited, TokenBuckets, rate_limited_response
from app.web.refusals import BodyLimits, body_cap, error_response, log_refusal
from app.web.socket_guard import (
    GuardedTransportWSHandler,
    SocketRefused,
    SocketRules,
)
from schema.context import Context
from schema.root import build_schema

logger = logging.getLogger(__name__)

CONNECTION_INIT_TIMEOUT_SECONDS = 5.0
MAX_OPERATIONS_PER_SOCKET = 10

READINESS_TIMEOUT_SECONDS = 2.0

ServicesFactory = Callable[[Settings], AbstractAsyncContextManager[Services]]


# Codes of the answers Strawberry gives before running anything (its HTTPExceptions).
HTTP_ERROR_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


class WebhooksGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app with our context: services, viewer, loaders; every call is
    admitted by the rate limits (``app.web.rate_limit``), websockets stay guarded
    (``app.web.socket_guard``)."""

    graphql_transport_ws_handler_class = GuardedTransportWSHandler

    def __init__(self, holder: ServicesHolder, settings: Settings) -> None:
        super().__init__(
            build_schema(production=settings.is_production, max_cost=settings.max_query_cost),
            graphql_ide=None if settings.is_production else "graphiql",
            allow_queries_via_get=False,
            # Not the legacy graphql-ws (subscriptions-transport-ws, unmaintained): a
            # second protocol would be a second way in to authenticate and bound. A client
            # asking only for it is closed with 4406 "Subprotocol not acceptable".
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            # A socket that has not sent connection_init has proven nothing and spent no
            # token: it may hold a socket and a task for this long only (Strawberry's
            # default is a minute).
            connection_init_wait_timeout=timedelta(seconds=CONNECTION_INIT_TIMEOUT_SECONDS),
            # Each live deliveryUpdates runs a query per change of its company: a socket
            # gets a few, not Strawberry's 100 (an operation over it gets an error).
            max_subscriptions_per_connection=MAX_OPERATIONS_PER_SOCKET,
        )
        self._holder = holder
        self.admission = Admission(
            TokenBuckets(settings.rate_limit_per_second, settings.rate_limit_burst),
            TokenBuckets(
                settings.rate_limit_unauthenticated_per_second,
                settings.rate_limit_unauthenticated_burst,
            ),
        )
        self.socket_rules = SocketRules(
            key_check_seconds=settings.ws_key_check_seconds,
            max_lifetime_seconds=settings.ws_max_lifetime_seconds,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope, receive))
        except HTTPException as error:
            # Strawberry answers these in plain text; clients get the same error shape as
            # for every other refusal.
            code = HTTP_ERROR_CODES.get(error.status_code, "BAD_REQUEST")
            response = error_response(error.reason, code, status_code=error.status_code)
            log_refusal(error.status_code, error.reason)
        await response(scope, receive, send)

    def decode_json(self, data: str | bytes) -> object:
        # Request bodies and websocket messages alike: bounded depth and numbers, UTF-8.
        return request_json.loads(data)

    def parse_json(self, data: str | bytes) -> Any:
        try:
            value = self.decode_json(data)
        except request_json.JsonRefused as error:
            raise HTTPException(400, error.reason) from None
        if not isinstance(value, dict | list):
            # Strawberry would call .get() on it (HTTP 500).
            raise HTTPException(
                400, 'Expected a JSON object: {"query": "...", "variables": {...}}.'
            )
        return value

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        services = self._holder.services
        if isinstance(request, WebSocket):
            # Browsers cannot send headers on websockets: the key arrives later, in the
            # connection_init payload (on_ws_connect).
            return Context(services=services, viewer=None, request=request, response=response)
        # AmbiguousCredentials and RateLimited become 400 and 429 (exception handlers).
        key = presented_key(request.headers.getlist("authorization"))
        viewer = await self._admit(key, request.client.host if request.client else None)
        # Every query of this request now runs in the viewer's database scope (row-level
        # security); the request runs in its own task (see RequestIsolation), so the
        # binding ends with it.
        bind_scope(scope_for(viewer))
        return Context(services=services, viewer=viewer, request=request, response=response)

    async def render_graphql_ide(self, request: Request) -> Response:
        return graphiql.page()

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate a websocket from its connection_init payload, or refuse it
        (SocketRefused: the guarded handlers close the socket with its code and reason)."""
        try:
            viewer = await self.admit_operation(context)
        except AmbiguousCredentials:
            raise SocketRefused(4400, "Send one authorization value, not several.") from None
        except RateLimited as limited:
            raise SocketRefused(1013, str(limited)) from None
        if viewer is None:
            raise SocketRefused(4403, "Missing or invalid API key.")
        context.viewer = viewer
        bind_scope(scope_for(viewer))  # inherited by the operations this connection starts
        return cast(UnsetType, UNSET)

    async def admit_operation(self, context: Context) -> Viewer | None:
        """Admit a websocket's connection or operation with its connection_init key."""
        key = presented_key(connection_authorization(context.connection_params or {}))
        client = context.request.client if context.request is not None else None
        return await self._admit(key, client.host if client else None)

    async def key_still_valid(self, context: Context) -> bool:
        """Whether the key a websocket authenticated with still stands for a viewer."""
        key = presented_key(connection_authorization(context.connection_params or {}))
        return key is not None and await self._verify(key) is not None

    async def _admit(self, key: str | None, client: str | None) -> Viewer | None:
        return await self.admission.admit(key, client, self._verify)

    async def _verify(self, key: str) -> Viewer | None:
        with scoped(None):  # api_keys is read outside any tenant's scope
            return await authenticate(self._holder.services.db, key)


def scope_for(viewer: Viewer | None) -> RowScope:
    """The database scope of a caller; no key at all gets a scope that sees no tenant row."""
    if viewer is not None and viewer.is_publisher:
        return PUBLISHER_SCOPE
    return RowScope("webhooks_api", viewer.company_id if viewer else None)


class RequestIsolation:
    """Run each request in a task of its own, so per-request context never leaks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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


async def ambiguous_credentials(_: Request, error: Exception) -> Response:
    """400 for a request with two Authorization headers (an exception handler)."""
    return error_response(
        "Send one Authorization header, not several.", "BAD_REQUEST", status_code=400
    )


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
    return error_response(
        UNAVAILABLE_MESSAGE,
        "UNAVAILABLE",
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

    async def root(_: Request) -> Response:
        # Someone opening the bare address finds GraphiQL (or, in production, the API).
        return RedirectResponse("/graphql")

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
            Route("/", root),
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
        exception_handlers={
            psycopg.OperationalError: cast(ExceptionHandler, database_unavailable),
            RateLimited: cast(ExceptionHandler, rate_limited_response),
            AmbiguousCredentials: ambiguous_credentials,
        },
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


async def readiness(
    holder: ServicesHolder, worker_health: WorkerHealth | None = None
) -> dict[str, bool]:
    """Whether the database answers in time and is migrated, has had the resources for
    recent statements (no class-53 error lately, see app/core/outages.py), and the worker (if
    any) runs."""
    checks: dict[str, bool] = {}
    db = holder.services.db
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            applied = await db.applied_migrations()
        checks["database"] = True
        checks["migrations"] = {m.name for m in own_migrations()} <= applied
    except Exception as error:  # any failure means "not ready"
        # An unreachable database is one line per probe (a load balancer probes every few
        # seconds for as long as it is away); anything else is a bug, with its traceback.
        expected = isinstance(error, TimeoutError | psycopg.Error | OSError)
        logger.warning(
            "readiness: database check failed (%s)", type(error).__name__, exc_info=not expected
        )
        checks["database"] = False
        checks["migrations"] = False
    checks["resources"] = not db.resource_alarm.raised
    if worker_health is not None:
        checks["worker"] = worker_health.running
    return checks
