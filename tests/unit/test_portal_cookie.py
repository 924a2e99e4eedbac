"""The portal's session cookie: what each environment sets, and where the token is read."""

from __future__ import annotations

from app.core.settings import Settings
from app.web.portal_access import csrf_header, presented_session, session_cookie

PRODUCTION = Settings(env="production", secret_key="k")


def test_production_sets_a_host_prefixed_secure_partitioned_cookie_for_cross_site_frames() -> None:
    cookie = session_cookie(PRODUCTION, "S" * 43, 28800)

    assert cookie.split("; ") == [
        "__Host-webhooks-portal=" + "S" * 43,
        "Path=/",
        "Max-Age=28800",
        "HttpOnly",
        "Secure",
        "SameSite=None",
        "Partitioned",
    ]


def test_development_sets_a_lax_cookie_over_plain_http() -> None:
    cookie = session_cookie(Settings(), "S" * 43, 60)

    assert cookie.split("; ") == [
        "webhooks-portal=" + "S" * 43,
        "Path=/",
        "Max-Age=60",
        "HttpOnly",
        "SameSite=Lax",
    ]


def test_each_environment_reads_only_its_own_cookie() -> None:
    cookies = {"webhooks-portal": "dev", "__Host-webhooks-portal": "prod"}

    assert presented_session(Settings(), cookies) == "dev"
    assert presented_session(PRODUCTION, cookies) == "prod"
    assert presented_session(Settings(), {"webhooks-portal": ""}) is None


def test_an_oversized_csrf_header_is_no_token() -> None:
    assert csrf_header({"x-webhooks-csrf": "t" * 43}) == "t" * 43
    assert csrf_header({"x-webhooks-csrf": "t" * 10_000}) is None
    assert csrf_header({}) is None
