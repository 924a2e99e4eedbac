"""Who gets the portal: opening a link, the session cookie, the page's headers, CSRF.

- ``GET /portal/open?token=...`` consumes the link (``app.domain.portal``), sets the
  session cookie and answers 303 to ``/portal/``.
- ``GET /portal/`` renders the page (``app.web.portal_page``) for a live session, with a
  Content-Security-Policy whose ``frame-ancestors`` are the company's embed origins.
- ``/portal/assets`` serves the page's files under the same policy.

The cookie is HttpOnly. In production it is ``__Host-webhooks-portal``, Secure,
SameSite=None and Partitioned: the portal lives in a customer's iframe, a cross-site
context where Lax or Strict cookies are never sent, and browsers that block third-party
cookies still keep a partitioned one. So SameSite defends nothing here: every call made
with the cookie must also carry the session's CSRF token (``X-Webhooks-CSRF`` over HTTP,
``csrfToken`` in a websocket's ``connection_init``), which only the page knows. In
development the cookie is ``webhooks-portal``, SameSite=Lax, over plain http.

Every refusal (a token unknown, used, expired, forged, malformed or of a revoked key; a
session missing or ended) is the same page with the same status: telling "never existed"
from "already used" would only help someone guessing, and the person holding the link
needs the same advice either way (ask for a new one). The refusal page holds nothing, so
any page may frame it: a customer's iframe shows the message instead of a blocked frame.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.embed_origins import content_security_policy
from app.core.errors import WebhooksError
from app.core.portal_tokens import SECRET_LENGTH, csrf_token
from app.core.settings import Settings
from app.domain.portal import OPEN_PATH, OpenedSession, PortalSession, find_session, open_link
from app.store.database import scoped
from app.store.services import Services
from app.web import portal_page
from app.web.rate_limit import Admission, RateLimited, address_bucket

T = TypeVar("T")

PAGE_PATH = "/portal/"
DEVELOPMENT_COOKIE = "webhooks-portal"
# __Host-: the browser takes it only with Secure, Path=/ and no Domain, so no subdomain
# can plant or shadow it.
PRODUCTION_COOKIE = "__Host-webhooks-portal"
CSRF_HEADER = "x-webhooks-csrf"
CSRF_PARAMETER = "csrfToken"
# A query string holding one token is 50 bytes; anything much longer is refused unread.
MAX_QUERY_BYTES = 200

PRIVATE = {"cache-control": "no-store", "referrer-policy": "no-referrer"}

LINK_REFUSED = (
    "This portal link has expired or was already used.",
    "Ask for a new link.",
)
SESSION_ENDED = (
    "Your portal session has ended.",
    "Open the portal again from where you found it, or ask for a new link.",
)
TOO_MANY = (
    "Too many attempts from your network.",
    "Wait a minute, then reload this page. Your link has not been used.",
)
_REFUSAL_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>PlanOmatic Webhooks portal</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>{title}</h1><p>{advice}</p></main></body></html>
"""
# Nothing on it to click or read: framed anywhere, it only says what to do.
REFUSAL_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors *"


class CsrfRefused(WebhooksError):
    """A call with the portal's session cookie came without its CSRF token, or a wrong one."""


class SessionEnded(WebhooksError):
    """A call with the portal's session cookie and its CSRF token, whose session is over
    (expired, its minting key revoked, or never issued)."""


def cookie_name(settings: Settings) -> str:
    return PRODUCTION_COOKIE if settings.is_production else DEVELOPMENT_COOKIE


def presented_session(settings: Settings, cookies: Mapping[str, str]) -> str | None:
    """The session id a request's cookies present, if any (not yet checked)."""
    return cookies.get(cookie_name(settings)) or None


def session_cookie(settings: Settings, value: str, max_age: int) -> str:
    """The ``Set-Cookie`` value for a session (``max_age`` 0: delete it).

    Written out here: Starlette's ``set_cookie`` sets Partitioned on Python 3.14+ only.
    """
    attributes = [f"{cookie_name(settings)}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly"]
    if settings.is_production:
        attributes += ["Secure", "SameSite=None", "Partitioned"]
    else:
        attributes.append("SameSite=Lax")
    return "; ".join(attributes)


def csrf_header(headers: Mapping[str, str]) -> str | None:
    """The CSRF token an HTTP request carries."""
    value = headers.get(CSRF_HEADER)
    return value if value is not None and len(value) <= SECRET_LENGTH else None


def refusal(
    lines: tuple[str, str], status_code: int, headers: Mapping[str, str] | None = None
) -> Response:
    """The one refusal page: no company data, nothing of what was presented."""
    title, advice = lines
    return HTMLResponse(
        _REFUSAL_PAGE.format(title=title, advice=advice),
        status_code=status_code,
        headers={
            **PRIVATE,
            "content-security-policy": REFUSAL_POLICY,
            "x-content-type-options": "nosniff",
            **(headers or {}),
        },
    )


def too_many(limited: RateLimited) -> Response:
    """429 as a page: a person reads it in an iframe, where a GraphQL error in JSON would
    be a blob of text. The lookup never ran, so a link is still unused."""
    return refusal(TOO_MANY, 429, {"retry-after": str(limited.retry_after)})


class WithHeaders:
    """An ASGI app whose HTTP responses all carry ``headers`` (the assets' policy)."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str]) -> None:
        self.app = app
        self.headers = [(name.encode(), value.encode()) for name, value in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class PortalAccess:
    """The portal's routes over the open services (they open after the app is made)."""

    def __init__(
        self, services: Callable[[], Services], settings: Settings, admission: Admission
    ) -> None:
        self._services = services
        self._settings = settings
        self._admission = admission

    def routes(self) -> list[BaseRoute]:
        assets_headers = {
            "content-security-policy": content_security_policy(()),
            "x-content-type-options": "nosniff",
        }
        return [
            Route(OPEN_PATH, self.open, methods=["GET"]),
            Route(PAGE_PATH, self.page, methods=["GET"]),
            Mount(
                portal_page.ASSETS_URL,
                app=WithHeaders(portal_page.static_files(), assets_headers),
            ),
        ]

    async def open(self, request: Request) -> Response:
        """Exchange a link's token for a session: 303 to the page with the cookie."""
        if request.method == "HEAD":
            # Starlette answers HEAD on GET routes: a proxy's or a checker's HEAD must not
            # spend the link its user is about to open.
            return Response(status_code=204, headers=PRIVATE)
        query: bytes = request.scope.get("query_string", b"")
        if len(query) > MAX_QUERY_BYTES:
            return refusal(LINK_REFUSED, 403)
        token = request.query_params.get("token", "")
        try:
            opened = await self._admitted(request, lambda: self._open(token))
        except RateLimited as limited:
            return too_many(limited)
        if opened is None:
            return refusal(LINK_REFUSED, 403)
        response = RedirectResponse(PAGE_PATH, status_code=303, headers=PRIVATE)
        max_age = self._settings.portal_session_seconds
        response.raw_headers.append(
            (b"set-cookie", session_cookie(self._settings, opened.session_id, max_age).encode())
        )
        return response

    async def page(self, request: Request) -> Response:
        """The portal's page for the session's company, framed only by its embed origins."""
        session_id = presented_session(self._settings, request.cookies)
        if session_id is None:
            return refusal(SESSION_ENDED, 401)
        try:
            session = await self._admitted(request, lambda: self._find(session_id))
        except RateLimited as limited:
            return too_many(limited)
        if session is None:
            return refusal(SESSION_ENDED, 401)
        viewer = session.viewer
        if viewer.portal is None:  # pragma: no cover - find_session always grants
            return refusal(SESSION_ENDED, 401)
        body = portal_page.render(
            csrf_token=csrf_token(session_id),
            access=viewer.portal.access.value,
            company_name=viewer.company_name or "",
        )
        return HTMLResponse(
            body,
            headers={
                **PRIVATE,
                "content-security-policy": content_security_policy(session.embed_origins),
                "x-content-type-options": "nosniff",
            },
        )

    async def _open(self, token: str) -> OpenedSession | None:
        with scoped(None):  # no caller yet: links are read as the owner, like API keys
            return await open_link(
                self._services().db, token, self._settings.portal_session_seconds
            )

    async def _find(self, session_id: str) -> PortalSession | None:
        with scoped(None):
            return await find_session(self._services().db, session_id)

    async def _admitted(
        self, request: Request, look_up: Callable[[], Awaitable[T | None]]
    ) -> T | None:
        """Run a lookup that proves nothing yet under the client address's bucket for
        unauthenticated calls (RateLimited when empty), given back when it succeeds."""
        address = address_bucket(request.client.host if request.client else None)
        self._admission.take_unauthenticated(address)
        found = await look_up()
        if found is not None:
            self._admission.unauthenticated.give_back(address)
        return found
