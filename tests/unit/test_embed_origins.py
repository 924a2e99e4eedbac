"""Embed origins go into the CSP as written: only exact origins pass, nothing that could
end or widen the frame-ancestors directive."""

from __future__ import annotations

import time

import pytest

from app.core.embed_origins import (
    MAX_ORIGINS,
    checked_origins,
    content_security_policy,
    origin_problem,
)
from app.core.errors import InvalidInput


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.acme.example",
        "https://app.acme.example:8443",
        "https://203.0.113.9",
        "http://localhost:3000",
        "http://127.0.0.1:5173",
    ],
)
def test_exact_origins_pass(origin: str) -> None:
    assert origin_problem(origin, allow_http=False) is None


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.acme.example/",  # a path
        "https://app.acme.example/portal",
        "https://*.acme.example",  # a wildcard
        "*",
        "'self'",
        "https://a.example; script-src *",  # would add a directive
        "https://a.example https://b.example",  # two in one
        "https://a.example,https://b.example",
        "https://a.example'",
        'https://a.example"',
        "https://App.Acme.example",  # browsers compare lower case
        "http://app.acme.example",  # http outside loopback, production
        "javascript://x",
        "data:text/html,x",
        "https://a.example:0",
        "https://a.example:70000",
        "https://999.1.1.1",
        "https://user@a.example",
        "https://a.example?x",
        "https://a.example#x",
        "https://-a.example",
        "https://[::1]",
        "",
        "https://" + "a" * 300 + ".example",
        "https://a.example\n",
    ],
)
def test_anything_else_is_refused(origin: str) -> None:
    assert origin_problem(origin, allow_http=False) is not None


def test_development_accepts_http_anywhere() -> None:
    assert origin_problem("http://app.acme.test:8080", allow_http=True) is None
    assert origin_problem("http://app.acme.test:8080", allow_http=False) is not None


def test_errors_are_reported_at_each_bad_origins_index() -> None:
    with pytest.raises(InvalidInput) as refused:
        checked_origins(
            ["https://ok.example", "https://x; y", "https://ok2.example", "*"], allow_http=False
        )

    assert [error.field for error in refused.value.errors] == [("origins", 1), ("origins", 3)]


def test_more_than_twenty_are_refused_and_duplicates_kept_once() -> None:
    many = [f"https://a{index}.example" for index in range(MAX_ORIGINS + 1)]
    with pytest.raises(InvalidInput) as refused:
        checked_origins(many, allow_http=False)
    assert refused.value.errors[0].field == ("origins",)

    assert checked_origins(["https://a.example", "https://a.example"], allow_http=False) == (
        "https://a.example",
    )


def test_the_policy_frames_by_the_listed_origins_or_none() -> None:
    assert content_security_policy(()) == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    assert content_security_policy(("https://a.example", "http://localhost:3000")).endswith(
        "; frame-ancestors https://a.example http://localhost:3000"
    )


def test_a_long_hostile_origin_is_refused_in_linear_time() -> None:
    started = time.perf_counter()
    for hostile in ("https://" + "a-" * 5_000_000, "https://" + "a." * 5_000_000 + "-"):
        assert origin_problem(hostile, allow_http=False) is not None
    assert time.perf_counter() - started < 0.5
