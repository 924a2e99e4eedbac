"""Portal access over HTTP: links open once into a session, the session calls the API as
its company with the CSRF token, and every refusal is one page with no company data."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.core.portal_tokens import PortalAccess, csrf_token
from app.core.settings import Settings
from app.domain import api_keys
from app.domain.portal import LinkGrant, PortalLimits, create_link
from app.store.services import Services
from app.web.portal_access import CSRF_HEADER, DEVELOPMENT_COOKIE, LINK_REFUSED, SESSION_ENDED
from app.web.server import build_app
from tests.service import GraphQLClient, Tenants

CREATE_LINK = """
mutation($input: CreatePortalLinkInput) {
  createPortalLink(input: $input) {
    link { url expiresAt access sessionExpiresInSeconds }
    userErrors { field code message }
  }
}"""
SESSION = "query { portalSession { access expiresAt company { id name } } }"
VIEWER = "query { viewer { role company { id name } } }"
SUBSCRIPTIONS = "query { webhookSubscriptions { nodes { id callbackUrl } } }"
CREATE_SUBSCRIPTION = """
mutation {
  createWebhookSubscription(input: {
    webhook: "ORDER_STATUS", callbackUrl: "http://127.0.0.1:9/portal",
    notificationEmail: "ops@example.com"
  }) { subscription { id } userErrors { code } }
}"""
SET_ORIGINS = """
mutation($origins: [String!]!) {
  setPortalEmbedOrigins(origins: $origins) {
    portalSettings { embedOrigins } userErrors { field code message }
  }
}"""


async def mint(api: GraphQLClient, key: str, **input: Any) -> dict[str, Any]:
    data = await api.data(CREATE_LINK, {"input": input}, key=key)
    payload: dict[str, Any] = data["createPortalLink"]
    assert payload["userErrors"] == [], payload
    link: dict[str, Any] = payload["link"]
    return link


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def open_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


class Browser:
    """A cookie jar of its own over the app (one person's browser)."""

    def __init__(self, app: Any) -> None:
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )
        self.csrf: str | None = None

    async def open(self, url: str) -> httpx.Response:
        response = await self.http.get(open_path(url))
        if response.status_code == 303:
            self.csrf = csrf_token(self.http.cookies[DEVELOPMENT_COOKIE])
        return response

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, *, csrf: str | None = "page"
    ) -> httpx.Response:
        headers = {}
        if csrf is not None:
            headers[CSRF_HEADER] = self.csrf if csrf == "page" else csrf
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.post(query, variables)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert not body.get("errors"), body
        data: dict[str, Any] = body["data"]
        return data


@pytest.fixture
async def browsers(settings: Settings, services: Services) -> Any:
    app = build_app(settings, services=services)
    opened: list[Browser] = []

    def new() -> Browser:
        browser = Browser(app)
        opened.append(browser)
        return browser

    yield new
    for browser in opened:
        await browser.http.aclose()


def assert_refused(response: httpx.Response, lines: tuple[str, str], *secrets: str) -> None:
    assert response.status_code in (401, 403)
    assert lines[0] in response.text and lines[1] in response.text
    for secret in ("Company A", "company-a", "Company B", *secrets):
        assert secret not in response.text
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers


async def test_a_link_opens_once_into_a_session_of_its_company(
    api: GraphQLClient, tenants: Tenants, browsers: Any, settings: Settings
) -> None:
    # Given a link minted by company A's key
    link = await mint(api, tenants.key_a, expiresInSeconds=120)
    assert link["url"].startswith(f"{settings.public_origin}/portal/open?token=")
    assert (link["access"], link["sessionExpiresInSeconds"]) == ("FULL", 28800)
    browser = browsers()

    # When something checks it with HEAD first, then the browser opens it
    assert (await browser.http.head(open_path(link["url"]))).status_code == 204
    opened = await browser.open(link["url"])

    # Then a session cookie is set and the page renders for company A
    assert opened.status_code == 303 and opened.headers["location"] == "/portal/"
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith(f"{DEVELOPMENT_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert (opened.headers["cache-control"], opened.headers["referrer-policy"]) == (
        "no-store",
        "no-referrer",
    )
    page = await browser.http.get("/portal/")
    assert page.status_code == 200
    assert "Company A" in page.text and browser.csrf in page.text
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]

    # And the session calls the API as company A
    data = await browser.data(SESSION)
    assert data["portalSession"]["access"] == "FULL"
    assert data["portalSession"]["company"] == {"id": tenants.a, "name": "Company A"}
    viewer = await browser.data(VIEWER)
    assert viewer["viewer"] == {
        "role": "COMPANY",
        "company": {"id": tenants.a, "name": "Company A"},
    }

    # And the link does not open a second time
    again = await browsers().open(link["url"])
    assert_refused(again, LINK_REFUSED, token_of(link["url"]))


async def test_keys_have_no_portal_session(api: GraphQLClient, tenants: Tenants) -> None:
    assert (await api.data(SESSION, key=tenants.key_a)) == {"portalSession": None}


@pytest.mark.parametrize(
    "token",
    [
        "",
        "x",
        "A" * 43,  # well-formed, never issued
        "<script>alert(1)</script>",
        "é" * 43,
        "A" * 44,
    ],
)
async def test_forged_and_malformed_tokens_get_the_one_refusal_page(
    browsers: Any, tenants: Tenants, token: str
) -> None:
    response = await browsers().http.get("/portal/open", params={"token": token})

    assert_refused(response, LINK_REFUSED, token if len(token) > 3 else "\0")
    assert "<script>" not in response.text


async def test_an_expired_link_is_refused(
    api: GraphQLClient, tenants: Tenants, browsers: Any
) -> None:
    link = await mint(api, tenants.key_a, expiresInSeconds=1)
    await asyncio.sleep(1.2)

    assert_refused(await browsers().open(link["url"]), LINK_REFUSED, token_of(link["url"]))


async def test_a_revoked_keys_link_is_refused_and_its_sessions_end(
    api: GraphQLClient, tenants: Tenants, browsers: Any, services: Services
) -> None:
    # Given a session opened from key A's link, and another link of the same key unused
    used = await mint(api, tenants.key_a)
    unused = await mint(api, tenants.key_a)
    browser = browsers()
    assert (await browser.open(used["url"])).status_code == 303
    assert (await browser.data(SESSION))["portalSession"] is not None

    # When the key is revoked
    prefix = api_keys.prefix_of(tenants.key_a)
    assert prefix is not None
    await api_keys.revoke_key(services.db, prefix)

    # Then the session ends (page and API) and the unused link opens nothing
    assert_refused(await browser.http.get("/portal/"), SESSION_ENDED)
    ended = await browser.post(SESSION)
    assert ended.status_code == 401
    assert ended.json() == {
        "errors": [
            {
                "message": "The portal session has ended; open a new portal link.",
                "extensions": {"code": "UNAUTHENTICATED"},
            }
        ]
    }
    assert_refused(await browsers().open(unused["url"]), LINK_REFUSED)


async def test_an_expired_or_missing_session_gets_the_session_page(
    database_url: str, tmp_path: Any, services: Services, tenants: Tenants
) -> None:
    settings = services.settings.with_overrides(portal_session_seconds=60)
    app = build_app(settings, services=services)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        assert_refused(await http.get("/portal/"), SESSION_ENDED)
        http.cookies.set(DEVELOPMENT_COOKIE, "A" * 43)
        assert_refused(await http.get("/portal/"), SESSION_ENDED)
        # A session row past its end: made by opening a link, then aged in the database.
        link = await create_link(
            services.db,
            PortalLimits.of(settings),
            LinkGrant(tenants.a, None, PortalAccess.FULL),
            None,
        )
        http.cookies.clear()
        assert (await http.get(open_path(link.url))).status_code == 303
        async with services.db.transaction() as tx:
            await tx.connection.execute(
                "UPDATE portal_sessions SET expires_at = now() - interval '1 second'"
            )
        assert_refused(await http.get("/portal/"), SESSION_ENDED)


async def test_two_concurrent_opens_make_exactly_one_session(
    api: GraphQLClient, tenants: Tenants, browsers: Any, services: Services
) -> None:
    link = await mint(api, tenants.key_a)

    answers = await asyncio.gather(*(browsers().open(link["url"]) for _ in range(8)))

    assert sorted(answer.status_code for answer in answers) == [303] + [403] * 7
    row = await services.db.fetch_one("get_portal_embed_origins", company_id=tenants.a)
    assert row is not None
    async with services.db.transaction() as tx:
        cursor = await tx.connection.execute("SELECT count(*) FROM portal_sessions")
        assert await cursor.fetchone() == (1,)


async def asgi_get(app: Any, path: str, query: bytes) -> tuple[int, bytes]:
    """One GET straight into the ASGI app (httpx refuses URLs this long)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    status, body = 0, b""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            body += message.get("body", b"")

    await app(scope, receive, send)
    return status, body


async def test_a_ten_megabyte_query_string_is_refused_at_once(
    settings: Settings, services: Services
) -> None:
    app = build_app(settings, services=services)
    short = b"token=" + b"A" * 1000
    huge = b"token=" + b"A" * 10_000_000

    started = time.perf_counter()
    status, _ = await asgi_get(app, "/portal/open", short)
    short_time = time.perf_counter() - started
    started = time.perf_counter()
    huge_status, huge_body = await asgi_get(app, "/portal/open", huge)
    huge_time = time.perf_counter() - started

    assert (status, huge_status) == (403, 403)
    assert LINK_REFUSED[0].encode() in huge_body and b"AAAAAAAAAA" not in huge_body
    # Refused unread: the 10 MB one costs about what the 1 kB one does.
    assert huge_time < max(20 * short_time, 0.2)


async def test_calls_with_the_cookie_need_the_csrf_token(
    api: GraphQLClient, tenants: Tenants, browsers: Any
) -> None:
    # Given two sessions of company A
    mine, other = browsers(), browsers()
    await mine.open((await mint(api, tenants.key_a))["url"])
    await other.open((await mint(api, tenants.key_a))["url"])
    assert mine.csrf != other.csrf

    # Then calls without the token, with a wrong one or another session's are refused
    for csrf in (None, "", "x" * 43, other.csrf):
        response = await mine.post(CREATE_SUBSCRIPTION, csrf=csrf)
        assert response.status_code == 403, csrf
        body = response.json()
        assert body["errors"][0]["extensions"]["code"] == "CSRF"
        assert "data" not in body or body["data"] is None
    # And nothing was written
    assert (await mine.data(SUBSCRIPTIONS))["webhookSubscriptions"]["nodes"] == []

    # And a GET never counts the cookie (GraphiQL's page, not an API call)
    got = await mine.http.get("/graphql", params={"query": VIEWER})
    assert "Company A" not in got.text


async def test_a_read_only_session_changes_nothing(
    api: GraphQLClient, tenants: Tenants, browsers: Any
) -> None:
    browser = browsers()
    await browser.open((await mint(api, tenants.key_a, access="READ_ONLY"))["url"])
    assert (await browser.data(SESSION))["portalSession"]["access"] == "READ_ONLY"

    response = await browser.post(CREATE_SUBSCRIPTION)

    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["data"] is None
    assert (await api.data(SUBSCRIPTIONS, key=tenants.key_a))["webhookSubscriptions"]["nodes"] == []
    page = await browser.http.get("/portal/")
    assert "READ_ONLY" in page.text


async def test_a_full_session_writes_as_its_company_but_mints_no_links(
    api: GraphQLClient, tenants: Tenants, browsers: Any
) -> None:
    browser = browsers()
    await browser.open((await mint(api, tenants.key_a))["url"])

    created = await browser.data(CREATE_SUBSCRIPTION)
    assert created["createWebhookSubscription"]["userErrors"] == []
    listed = await api.data(SUBSCRIPTIONS, key=tenants.key_a)
    assert len(listed["webhookSubscriptions"]["nodes"]) == 1
    assert (await api.data(SUBSCRIPTIONS, key=tenants.key_b))["webhookSubscriptions"]["nodes"] == []

    # Minting a link or changing embed origins from a session would outlast it: refused.
    for document, variables in ((CREATE_LINK, {}), (SET_ORIGINS, {"origins": []})):
        body = (await browser.post(document, variables)).json()
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body


async def test_a_session_of_company_a_finds_nothing_of_company_b(
    api: GraphQLClient, tenants: Tenants, browsers: Any
) -> None:
    # Given a subscription of company B
    created = await api.data(CREATE_SUBSCRIPTION, key=tenants.key_b)
    b_subscription = created["createWebhookSubscription"]["subscription"]["id"]
    browser = browsers()
    await browser.open((await mint(api, tenants.key_a))["url"])

    # Then company A's session gets null for its id, and an empty list
    found = await browser.data(
        "query($id: ID!) { webhookSubscription(id: $id) { id callbackUrl } }",
        {"id": b_subscription},
    )
    assert found == {"webhookSubscription": None}
    assert (await browser.data(SUBSCRIPTIONS))["webhookSubscriptions"]["nodes"] == []
    deleted = (
        await browser.data(
            "mutation($id: ID!) { deleteWebhookSubscription(id: $id) { deletedId "
            "userErrors { code } } }",
            {"id": b_subscription},
        )
    )["deleteWebhookSubscription"]
    assert deleted == {"deletedId": None, "userErrors": [{"code": "NOT_FOUND"}]}


async def test_publisher_keys_and_bad_lifetimes_mint_nothing(
    api: GraphQLClient, tenants: Tenants
) -> None:
    body = await api.post(CREATE_LINK, {"input": {}}, key=tenants.publisher)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    for seconds in (0, -5, 3601):
        data = await api.data(
            CREATE_LINK, {"input": {"expiresInSeconds": seconds}}, key=tenants.key_a
        )
        payload = data["createPortalLink"]
        assert payload["link"] is None
        assert payload["userErrors"] == [
            {
                "field": ["input", "expiresInSeconds"],
                "code": "INVALID",
                "message": "Must be 1 to 3600 seconds.",
            }
        ]


async def test_production_without_a_public_url_mints_no_link(
    services: Services, tenants: Tenants
) -> None:
    settings = services.settings.with_overrides(env="production")
    app = build_app(settings, services=dataclasses.replace(services, settings=settings))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://evil.example"
    ) as http:
        api = GraphQLClient(http)
        data = await api.data(CREATE_LINK, {"input": {}}, key=tenants.key_a)

    assert data["createPortalLink"]["link"] is None
    assert data["createPortalLink"]["userErrors"][0]["code"] == "PORTAL_NOT_CONFIGURED"


async def test_the_production_cookie_is_host_prefixed_secure_none_and_partitioned(
    services: Services, tenants: Tenants
) -> None:
    settings = services.settings.with_overrides(
        env="production", public_url="https://hooks.example.com"
    )
    link = await create_link(
        services.db, PortalLimits.of(settings), LinkGrant(tenants.a, None, PortalAccess.FULL), None
    )
    assert link.url.startswith("https://hooks.example.com/portal/open?token=")
    app = build_app(settings, services=dataclasses.replace(services, settings=settings))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://hooks.example.com"
    ) as http:
        opened = await http.get(open_path(link.url))
        cookie = opened.headers["set-cookie"]
        assert cookie.startswith("__Host-webhooks-portal=")
        for attribute in ("Secure", "SameSite=None", "Partitioned", "HttpOnly", "Path=/"):
            assert attribute in cookie.split("; ")
        # The development cookie's name means nothing in production.
        page = await http.get("/portal/")
        assert page.status_code == 200 and "Company A" in page.text
        http.cookies.set(DEVELOPMENT_COOKIE, http.cookies["__Host-webhooks-portal"])
        del http.cookies["__Host-webhooks-portal"]
        assert (await http.get("/portal/")).status_code == 401


async def test_secrets_never_reach_logs_or_graphql_output(
    api: GraphQLClient,
    tenants: Tenants,
    browsers: Any,
    services: Services,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    link = await mint(api, tenants.key_a)
    token = token_of(link["url"])
    browser = browsers()
    await browser.open(link["url"])
    session_id = browser.http.cookies[DEVELOPMENT_COOKIE]
    assert browser.csrf is not None
    outputs = [
        (await browser.post(SESSION)).text,
        (await browser.post(SESSION, csrf="wrong")).text,
        (await browser.post("query { nope }")).text,
        (await browser.http.get("/portal/open", params={"token": token})).text,
        (await browser.http.get("/portal/")).text.replace(browser.csrf, ""),
    ]

    # The service's records (the test's own HTTP client logs the URLs it requests).
    logged = "\n".join(
        f"{record.getMessage()} {record.exc_text or ''}"
        for record in caplog.records
        if not record.name.startswith(("httpx", "httpcore"))
    )
    assert "GraphQL request refused" in logged
    # And the database keeps hashes only
    async with services.db.transaction() as tx:
        cursor = await tx.connection.execute(
            "SELECT (SELECT json_agg(l)::text FROM portal_links l) || "
            "(SELECT json_agg(s)::text FROM portal_sessions s)"
        )
        stored = str(await cursor.fetchone())
    for secret in (token, session_id, browser.csrf):
        assert secret not in logged
        assert secret not in stored
        for output in outputs:
            assert secret not in output


async def test_graphql_answers_are_never_stored_by_a_cache(
    api: GraphQLClient, tenants: Tenants, browsers: Any
) -> None:
    # A cookie caller's answers hold its company's data under a URL that is the same for
    # every session: a browser's or a proxy's cache must keep none of them (nor a key's).
    browser = browsers()
    await browser.open((await mint(api, tenants.key_a))["url"])

    answers = {
        "session": await browser.post(VIEWER),
        "session, refused mutation": await browser.post(SET_ORIGINS, {"origins": []}),
        "key": await api.http.post(
            "/graphql",
            json={"query": VIEWER},
            headers={"authorization": f"Bearer {tenants.key_a}"},
        ),
    }

    for caller, answer in answers.items():
        assert answer.status_code == 200, caller
        assert "Company A" in answer.text or "FORBIDDEN" in answer.text, caller
        assert answer.headers.get("cache-control") == "no-store", caller


async def test_a_rate_limited_open_is_a_page_that_spends_no_link(
    api: GraphQLClient, tenants: Tenants, settings: Settings, services: Services
) -> None:
    # Given an address that has spent its bucket of unproven calls on forged tokens
    limited = settings.with_overrides(
        rate_limit_unauthenticated_per_second=0.01, rate_limit_unauthenticated_burst=1
    )
    link = await mint(api, tenants.key_a)
    guesser = Browser(build_app(limited, services=services))
    try:
        assert (
            await guesser.http.get("/portal/open", params={"token": "A" * 43})
        ).status_code == 403

        # When a real link is opened from it, and then the page with a session cookie
        refused = [await guesser.open(link["url"])]
        guesser.http.cookies.set(DEVELOPMENT_COOKIE, "B" * 43)
        refused.append(await guesser.http.get("/portal/"))
    finally:
        await guesser.http.aclose()

    # Then each is a page in the iframe (not a GraphQL error in JSON) that says to wait
    for response in refused:
        assert response.status_code == 429
        assert response.headers["content-type"].startswith("text/html")
        assert "Too many attempts" in response.text
        assert response.headers["retry-after"].isdigit()
        assert response.headers["cache-control"] == "no-store"
        assert "set-cookie" not in response.headers
        assert token_of(link["url"]) not in response.text
    # And the link was not spent: it still opens, once
    opener = Browser(build_app(settings, services=services))
    try:
        assert (await opener.open(link["url"])).status_code == 303
    finally:
        await opener.http.aclose()
