"""Embed origins through GraphQL: checked at each index, listed in the page's CSP, and the
portal's expired links and sessions purged by the retention job."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.core.portal_tokens import PortalAccess
from app.domain.portal import LinkGrant, PortalLimits, create_link
from app.domain.retention import purge_old_data
from app.store.services import Services
from tests.service import GraphQLClient, Tenants

SET_ORIGINS = """
mutation($origins: [String!]!) {
  setPortalEmbedOrigins(origins: $origins) {
    portalSettings { embedOrigins } userErrors { field code message }
  }
}"""
SETTINGS = "query { portalSettings { embedOrigins } }"


async def set_origins(api: GraphQLClient, key: str, origins: list[str]) -> dict[str, Any]:
    data = await api.data(SET_ORIGINS, {"origins": origins}, key=key)
    payload: dict[str, Any] = data["setPortalEmbedOrigins"]
    return payload


async def page_policy(http: httpx.AsyncClient, services: Services, company: str) -> str:
    """The CSP of the portal page of a fresh session of ``company``."""
    link = await create_link(
        services.db,
        PortalLimits.of(services.settings),
        LinkGrant(company, None, PortalAccess.FULL),
        None,
    )
    parts = urlsplit(link.url)
    http.cookies.clear()
    assert (await http.get(f"{parts.path}?{parts.query}")).status_code == 303
    page = await http.get("/portal/")
    assert page.status_code == 200
    return page.headers["content-security-policy"]


async def test_listed_origins_frame_the_portal_and_none_listed_forbids_framing(
    api: GraphQLClient, http: httpx.AsyncClient, services: Services, tenants: Tenants
) -> None:
    # Given no origin listed
    assert (await api.data(SETTINGS, key=tenants.key_a)) == {"portalSettings": {"embedOrigins": []}}
    assert (await page_policy(http, services, tenants.a)).endswith("frame-ancestors 'none'")

    # When company A lists two
    saved = await set_origins(
        api, tenants.key_a, ["https://app.acme.example", "http://localhost:3000"]
    )

    # Then they are saved, read back and put in A's CSP, and B's stays closed
    assert saved == {
        "portalSettings": {"embedOrigins": ["https://app.acme.example", "http://localhost:3000"]},
        "userErrors": [],
    }
    assert (await api.data(SETTINGS, key=tenants.key_a))["portalSettings"]["embedOrigins"] == [
        "https://app.acme.example",
        "http://localhost:3000",
    ]
    assert (await page_policy(http, services, tenants.a)).endswith(
        "frame-ancestors https://app.acme.example http://localhost:3000"
    )
    assert (await page_policy(http, services, tenants.b)).endswith("frame-ancestors 'none'")

    # And the assets carry the same policy (framed by nobody: they are not pages)
    asset = await http.get("/portal/assets/portal.js")
    assert asset.status_code == 200
    assert asset.headers["content-security-policy"].endswith("frame-ancestors 'none'")
    assert asset.headers["x-content-type-options"] == "nosniff"

    # And an empty list closes A again
    assert (await set_origins(api, tenants.key_a, []))["portalSettings"] == {"embedOrigins": []}


@pytest.mark.parametrize(
    "hostile",
    [
        "https://a.example; script-src 'unsafe-inline'",
        "https://a.example 'unsafe-inline'",
        "https://*.example",
        "*",
        "https://a.example/path",
        "'none'",
    ],
)
async def test_injection_attempts_are_refused_at_their_index_and_nothing_saved(
    api: GraphQLClient, tenants: Tenants, hostile: str
) -> None:
    await set_origins(api, tenants.key_a, ["https://kept.example"])

    refused = await set_origins(api, tenants.key_a, ["https://fine.example", hostile])

    assert refused["portalSettings"] is None
    assert [(error["field"], error["code"]) for error in refused["userErrors"]] == [
        (["origins", "1"], "INVALID")
    ]
    assert (await api.data(SETTINGS, key=tenants.key_a))["portalSettings"]["embedOrigins"] == [
        "https://kept.example"
    ]


async def test_twenty_one_origins_are_refused(api: GraphQLClient, tenants: Tenants) -> None:
    refused = await set_origins(
        api, tenants.key_a, [f"https://a{index}.example" for index in range(21)]
    )

    assert refused["userErrors"][0]["field"] == ["origins"]


async def test_publisher_keys_neither_read_nor_set_origins(
    api: GraphQLClient, tenants: Tenants
) -> None:
    for document, variables in ((SETTINGS, {}), (SET_ORIGINS, {"origins": []})):
        body = await api.post(document, variables, key=tenants.publisher)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_retention_deletes_expired_links_and_sessions_and_keeps_live_ones(
    services: Services, http: httpx.AsyncClient, tenants: Tenants
) -> None:
    # Given a live session (its link used) and two more links, one of which is expired
    await page_policy(http, services, tenants.a)
    limits = PortalLimits.of(services.settings)
    for _ in range(2):
        await create_link(services.db, limits, LinkGrant(tenants.a, None, PortalAccess.FULL), None)
    async with services.db.transaction() as tx:
        await tx.connection.execute(
            "UPDATE portal_links SET expires_at = now() - interval '1 s' "
            "WHERE token_hash = (SELECT token_hash FROM portal_links WHERE used_at IS NULL "
            "LIMIT 1)"
        )
        await tx.connection.execute(
            "INSERT INTO portal_sessions (session_hash, company_id, access, expires_at) "
            "VALUES ('\\x00', %s, 'FULL', now() - interval '1 s')",
            (tenants.a,),
        )

    # When the retention job runs
    report = await purge_old_data(services.db, services.settings.retention_days)

    # Then the expired ones are gone, the live ones stay
    assert (report.portal_links, report.portal_sessions) == (1, 1)
    async with services.db.transaction() as tx:
        links = await (await tx.connection.execute("SELECT count(*) FROM portal_links")).fetchone()
        sessions = await (
            await tx.connection.execute("SELECT count(*) FROM portal_sessions")
        ).fetchone()
    assert (links, sessions) == ((2,), (1,))
    assert (await http.get("/portal/")).status_code == 200
