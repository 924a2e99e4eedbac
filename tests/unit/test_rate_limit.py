"""TokenBuckets with a fake clock, and the RateLimit middleware around a tiny app."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from app import rate_limit
from app.api_keys import generate_key
from app.rate_limit import RateLimit, TokenBuckets


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_full_bucket_grants_the_burst_then_refuses_with_the_wait(clock: FakeClock) -> None:
    buckets = TokenBuckets(rate=1.0, burst=3, clock=clock)

    granted = [buckets.take("key") for _ in range(3)]
    refused = buckets.take("key")

    assert granted == [0.0, 0.0, 0.0]
    assert refused == pytest.approx(1.0)


def test_the_wait_is_the_time_until_the_next_whole_token(clock: FakeClock) -> None:
    buckets = TokenBuckets(rate=0.5, burst=1, clock=clock)
    assert buckets.take("key") == 0.0

    assert buckets.take("key") == pytest.approx(2.0)
    clock.advance(1.5)
    assert buckets.take("key") == pytest.approx(0.5)


def test_tokens_refill_over_time(clock: FakeClock) -> None:
    buckets = TokenBuckets(rate=2.0, burst=2, clock=clock)
    assert [buckets.take("key") for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("key") > 0

    clock.advance(0.5)  # one token at 2 per second

    assert buckets.take("key") == 0.0
    assert buckets.take("key") == pytest.approx(0.5)


def test_refused_requests_do_not_consume_tokens(clock: FakeClock) -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, clock=clock)
    assert buckets.take("key") == 0.0
    for _ in range(5):
        assert buckets.take("key") > 0

    clock.advance(1.0)

    assert buckets.take("key") == 0.0


def test_a_long_idle_bucket_holds_no_more_than_the_burst(clock: FakeClock) -> None:
    buckets = TokenBuckets(rate=10.0, burst=3, clock=clock)
    buckets.take("key")

    clock.advance(3600)

    assert [buckets.take("key") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("key") == pytest.approx(0.1)


def test_keys_have_separate_buckets(clock: FakeClock) -> None:
    buckets = TokenBuckets(rate=1.0, burst=2, clock=clock)
    assert [buckets.take("a") for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("a") > 0

    assert [buckets.take("b") for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("b") > 0
    assert buckets.take("a") > 0


def test_the_least_recently_used_bucket_is_dropped_past_the_cap(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rate_limit, "MAX_BUCKETS", 2)
    buckets = TokenBuckets(rate=0.001, burst=1, clock=clock)
    # Given two empty buckets, "a" used more recently than "b"
    buckets.take("b")
    buckets.take("a")
    assert buckets.take("b") > 0
    assert buckets.take("a") > 0

    # When a third key arrives
    assert buckets.take("c") == 0.0

    # Then "b" (least recently used) was forgotten and starts full; "a" is still empty
    assert buckets.take("a") > 0
    assert buckets.take("b") == 0.0
    assert len(buckets._buckets) == 2


def test_the_bucket_count_never_exceeds_the_cap(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rate_limit, "MAX_BUCKETS", 10)
    buckets = TokenBuckets(rate=1.0, burst=1, clock=clock)

    for index in range(100):
        buckets.take(f"key-{index}")

    assert len(buckets._buckets) == 10
    assert list(buckets._buckets) == [f"key-{index}" for index in range(90, 100)]


# -- the middleware --------------------------------------------------------------------


async def _ok(_: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def _client(buckets: TokenBuckets, client: tuple[str, int] = ("10.0.0.1", 1234)) -> Any:
    app = Starlette(routes=[Route("/graphql", _ok, methods=["POST"]), Route("/healthz", _ok)])
    transport = httpx.ASGITransport(app=RateLimit(app, buckets), client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_the_middleware_answers_429_with_a_graphql_error_and_retry_after(
    clock: FakeClock,
) -> None:
    buckets = TokenBuckets(rate=0.25, burst=1, clock=clock)
    key, _ = generate_key()
    headers = {"authorization": f"Bearer {key}"}
    async with _client(buckets) as client:
        first = await client.post("/graphql", headers=headers)
        second = await client.post("/graphql", headers=headers)

    assert first.status_code == 200
    assert second.status_code == 429
    assert second.headers["retry-after"] == "4"
    [error] = second.json()["errors"]
    assert error["extensions"] == {"code": "RATE_LIMITED", "retryAfter": 4}
    assert "retry after 4 s" in error["message"]


async def test_the_middleware_rounds_short_waits_up_to_one_second(clock: FakeClock) -> None:
    buckets = TokenBuckets(rate=100.0, burst=1, clock=clock)
    async with _client(buckets) as client:
        await client.post("/graphql")
        refused = await client.post("/graphql")

    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["errors"][0]["extensions"]["retryAfter"] == 1


async def test_the_middleware_counts_per_key_prefix_and_else_per_address(
    clock: FakeClock,
) -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, clock=clock)
    key_a, prefix_a = generate_key()
    key_b, _ = generate_key()
    async with _client(buckets) as client:
        statuses = [
            (await client.post("/graphql", headers={"authorization": f"Bearer {key}"})).status_code
            for key in (key_a, key_b, key_a, "not-a-key", "also-not-a-key")
        ]

    # key_a twice: refused the second time; key_b its own bucket; the two malformed keys
    # share the client address's bucket.
    assert statuses == [200, 200, 429, 200, 429]
    assert prefix_a in buckets._buckets
    assert "address:10.0.0.1" in buckets._buckets


async def test_other_paths_and_a_zero_rate_are_not_limited(clock: FakeClock) -> None:
    limited = TokenBuckets(rate=1.0, burst=1, clock=clock)
    async with _client(limited) as client:
        health = [(await client.get("/healthz")).status_code for _ in range(5)]
    unlimited = TokenBuckets(rate=0.0, burst=1, clock=clock)
    async with _client(unlimited) as client:
        graphql = [(await client.post("/graphql")).status_code for _ in range(5)]

    assert health == [200] * 5
    assert graphql == [200] * 5
