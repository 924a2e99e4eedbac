"""The GraphQL app on /graphql: Strawberry's ASGI app with the service's context.

Every call is admitted by the rate limits (``app.web.rate_limit``) with the key it
presents (``app.web.bearer``) and then runs in its caller's database scope
(``app.web.roles``); websockets stay guarded (``app.web.socket_guard``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from app.core.portal_tokens import csrf_matches
from app.core.settings import Settings
from app.core.viewer import Viewer
from app.domain.api_keys import authenticate
from app.domain.portal import find_session
from app.store.database import bind_scope, scoped
from app.store.services import Services
from app.web import graphiql, request_json
from app.web.bearer import AmbiguousCredentials, connection_key, header_key
from app.web.portal_access import (
    CSRF_PARAMETER,
    CsrfRefused,
    SessionEnded,
    csrf_header,
    presented_session,
)
from app.web.rate_limit import Admission, RateLimited, TokenBuckets
from app.web.refusals import error_response, graphql_error, log_refusal
from app.web.roles import scope_for
from app.web.socket_guard import GuardedTransportWSHandler, SocketRefused, SocketRules
from schema.context import Context
from schema.root import build_schema

CONNECTION_INIT_TIMEOUT_SECONDS = 5.0
MAX_OPERATIONS_PER_SOCKET = 10

# Codes of the answers Strawberry gives before running anything (its HTTPExceptions).
HTTP_ERROR_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


class WebhooksGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app with our context: services, viewer, loaders."""

    graphql_transport_ws_handler_class = GuardedTransportWSHandler

    def __init__(self, services: Callable[[], Services], settings: Settings) -> None:
        """``services`` gives the open services (they open after the app is made)."""
        super().__init__(
            build_schema(
                production=settings.is_production,
                max_cost=settings.max_query_cost,
                fast_execution=settings.fast_execution,
            ),
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
        self._services = services
        self._settings = settings
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
            response = error_response(
                graphql_error(error.reason, code), status_code=error.status_code
            )
            log_refusal(error.status_code, error.reason)
        # An answer is one caller's data under the one URL every caller posts to: no
        # browser's or proxy's cache may keep it for the next (a portal session's
        # cookie makes a browser's cache a real candidate).
        response.headers["cache-control"] = "no-store"
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
        services = self._services()
        if isinstance(request, WebSocket):
            # Browsers cannot send headers on websockets: the key arrives later, in the
            # connection_init payload (on_ws_connect).
            return Context(services=services, viewer=None, request=request, response=response)
        # AmbiguousCredentials, RateLimited, CsrfRefused and SessionEnded become 400, 429,
        # 403 and 401 (app.web.handlers).
        client = request.client.host if request.client else None
        session_id = self._http_session(request)
        if session_id is not None:
            viewer = await self.admission.admit_session(session_id, client, self._verify_session)
            if viewer is None:
                # Not "invalid API key": the page tells its user the session is over.
                raise SessionEnded("the portal session has ended")
        else:
            viewer = await self._admit(header_key(request.headers), client)
        # Every query of this request now runs in the viewer's database scope (row-level
        # security); the request runs in its own task (app.web.isolation), so the
        # binding ends with it.
        bind_scope(scope_for(viewer))
        return Context(services=services, viewer=viewer, request=request, response=response)

    def _http_session(self, request: Request) -> str | None:
        """The portal session a POST presents in place of a key: its cookie, only with no
        Authorization header, and only with the session's CSRF token (else CsrfRefused,
        before any lookup). A GET never counts the cookie."""
        if request.method != "POST" or request.headers.getlist("authorization"):
            return None
        session_id = presented_session(self._settings, request.cookies)
        if session_id is None:
            return None
        if not csrf_matches(session_id, csrf_header(request.headers)):
            raise CsrfRefused("missing or wrong CSRF token")
        return session_id

    def _socket_session(self, context: Context) -> str | None:
        """The portal session a websocket presents: its cookie, when connection_init has no
        authorization; SocketRefused unless the page is this service's own origin and the
        payload carries the session's CSRF token."""
        params = context.connection_params or {}
        if any(isinstance(name, str) and name.lower() == "authorization" for name in params):
            return None
        socket = context.request
        if not isinstance(socket, WebSocket):
            return None
        session_id = presented_session(self._settings, socket.cookies)
        if session_id is None:
            return None
        if socket.headers.get("origin") != self._settings.public_origin:
            raise SocketRefused(4403, "A portal session connects from the portal's own page.")
        presented = params.get(CSRF_PARAMETER)
        if not csrf_matches(session_id, presented if isinstance(presented, str) else None):
            raise SocketRefused(4403, "Missing or wrong CSRF token.")
        return session_id

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
        """Admit a websocket's connection or operation with its connection_init key, or
        its portal session."""
        client = context.request.client if context.request is not None else None
        address = client.host if client else None
        session_id = self._socket_session(context)
        if session_id is not None:
            return await self.admission.admit_session(session_id, address, self._verify_session)
        return await self._admit(connection_key(context.connection_params), address)

    async def key_still_valid(self, context: Context) -> bool:
        """Whether the key (or portal session: unexpired, its minting key not revoked) a
        websocket authenticated with still stands for a viewer."""
        session_id = self._socket_session(context)
        if session_id is not None:
            return await self._verify_session(session_id) is not None
        key = connection_key(context.connection_params)
        return key is not None and await self._verify(key) is not None

    async def _admit(self, key: str | None, client: str | None) -> Viewer | None:
        return await self.admission.admit(key, client, self._verify)

    async def _verify(self, key: str) -> Viewer | None:
        with scoped(None):  # api_keys is read outside any tenant's scope
            return await authenticate(self._services().db, key)

    async def _verify_session(self, session_id: str) -> Viewer | None:
        with scoped(None):  # as for keys: sessions are read before there is a caller
            session = await find_session(self._services().db, session_id)
        return session.viewer if session is not None else None
