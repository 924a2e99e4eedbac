"""TokenBuckets with a fake clock, and Admission with a fake key lookup: which bucket a
call spends, and what is refused before the lookup."""

from __future__ import annotations

import asyncio

import pytest

from app.core.viewer import Viewer
from app.domain.api_keys import generate_key, prefix_of
from app.web import rate_limit
from app.web.rate_limit import Admission, RateLimited, TokenBuckets, address_bucket


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


def test_looking_at_a_bucket_takes_nothing_and_creates_nothing(clock: FakeClock) -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, clock=clock)

    assert buckets.wait("never-used") == 0.0
    assert "never-used" not in buckets._buckets
    assert buckets.take("key") == 0.0
    assert buckets.wait("key") == pytest.approx(1.0)
    assert buckets.wait("key") == pytest.approx(1.0)

    clock.advance(1.0)

    assert buckets.wait("key") == 0.0
    assert buckets.take("key") == 0.0


def test_a_zero_rate_grants_everything(clock: FakeClock) -> None:
    buckets = TokenBuckets(rate=0.0, burst=1, clock=clock)

    assert [buckets.take("key") for _ in range(5)] == [0.0] * 5
    assert buckets.wait("key") == 0.0


# -- admission ---------------------------------------------------------------------------


class FakeKeys:
    """The key lookup: knows some keys, counts every lookup."""

    def __init__(self, *keys: str) -> None:
        self.viewers = {key: Viewer("COMPANY", str(prefix_of(key)), "acme") for key in keys}
        self.lookups = 0

    async def __call__(self, key: str) -> Viewer | None:
        self.lookups += 1
        return self.viewers.get(key)


def forged_key_with_prefix(prefix: str) -> str:
    forged, _ = generate_key()
    return prefix + forged[len(prefix) :]


def admission(clock: FakeClock, *, key_burst: int = 3, unauthenticated_burst: int = 2) -> Admission:
    return Admission(
        TokenBuckets(rate=1.0, burst=key_burst, clock=clock),
        TokenBuckets(rate=1.0, burst=unauthenticated_burst, clock=clock),
    )


async def outcomes(
    gate: Admission, key: str | None, client: str, lookup: FakeKeys, n: int
) -> list[str]:
    """``n`` calls in a row: "viewer", "anonymous" or "limited" each."""
    results = []
    for _ in range(n):
        try:
            viewer = await gate.admit(key, client, lookup)
        except RateLimited:
            results.append("limited")
        else:
            results.append("viewer" if viewer else "anonymous")
    return results


async def test_forged_keys_get_no_bucket_and_past_the_address_burst_no_lookup(
    clock: FakeClock,
) -> None:
    gate = admission(clock, unauthenticated_burst=2)
    lookup = FakeKeys()

    results = [
        (await outcomes(gate, generate_key()[0], "10.0.0.1", lookup, 1))[0] for _ in range(5)
    ]

    assert results == ["anonymous", "anonymous", "limited", "limited", "limited"]
    assert lookup.lookups == 2
    assert list(gate.keys._buckets) == []
    assert list(gate.unauthenticated._buckets) == ["address:10.0.0.1"]


async def test_a_forged_key_with_a_real_prefix_does_not_drain_the_real_keys_bucket(
    clock: FakeClock,
) -> None:
    real, prefix = generate_key()
    gate = admission(clock, key_burst=3, unauthenticated_burst=2)
    lookup = FakeKeys(real)

    forged = await outcomes(gate, forged_key_with_prefix(prefix), "10.6.6.6", lookup, 10)
    genuine = await outcomes(gate, real, "10.0.0.1", lookup, 4)

    assert forged == ["anonymous", "anonymous"] + ["limited"] * 8
    assert genuine == ["viewer", "viewer", "viewer", "limited"]


async def test_one_addresses_failures_do_not_slow_a_valid_key_from_elsewhere(
    clock: FakeClock,
) -> None:
    real, _ = generate_key()
    gate = admission(clock, key_burst=3, unauthenticated_burst=1)
    lookup = FakeKeys(real)

    await outcomes(gate, "not-a-key", "10.6.6.6", lookup, 5)
    same_address = await outcomes(gate, real, "10.6.6.6", lookup, 1)
    elsewhere = await outcomes(gate, real, "10.0.0.1", lookup, 3)

    assert same_address == ["limited"]
    assert elsewhere == ["viewer"] * 3


async def test_a_key_with_an_empty_bucket_is_refused_before_the_lookup(clock: FakeClock) -> None:
    real, _ = generate_key()
    gate = admission(clock, key_burst=2)
    lookup = FakeKeys(real)

    results = await outcomes(gate, real, "10.0.0.1", lookup, 5)

    assert results == ["viewer", "viewer", "limited", "limited", "limited"]
    assert lookup.lookups == 2
    clock.advance(1.0)
    assert await outcomes(gate, real, "10.0.0.1", lookup, 1) == ["viewer"]


async def test_calls_without_a_key_spend_the_address_bucket_without_a_lookup(
    clock: FakeClock,
) -> None:
    gate = admission(clock, unauthenticated_burst=2)
    lookup = FakeKeys()

    results = await outcomes(gate, None, "10.0.0.1", lookup, 3)
    malformed = await outcomes(gate, "pwk_short", "10.0.0.2", lookup, 3)

    assert results == ["anonymous", "anonymous", "limited"]
    assert malformed == ["anonymous", "anonymous", "limited"]
    assert lookup.lookups == 0


async def test_the_refusal_says_when_to_retry(clock: FakeClock) -> None:
    gate = Admission(
        TokenBuckets(rate=1.0, burst=1, clock=clock), TokenBuckets(0.25, 1, clock=clock)
    )
    await gate.admit(None, "10.0.0.1", FakeKeys())

    with pytest.raises(RateLimited) as refused:
        await gate.admit(None, "10.0.0.1", FakeKeys())

    assert refused.value.retry_after == 4
    assert RateLimited(0.01).retry_after == 1  # short waits round up to a whole second
    assert refused.value.error == {
        "message": "Rate limit exceeded; retry after 4 s.",
        "extensions": {"code": "RATE_LIMITED", "retryAfter": 4},
    }


@pytest.mark.parametrize(
    ("client", "bucket"),
    [
        ("192.0.2.7", "address:192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "address:2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::2", "address:2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "address:192.0.2.7"),
        (None, "address:unknown"),
        ("testclient", "address:testclient"),
    ],
)
def test_ipv6_clients_share_a_bucket_per_64(client: str | None, bucket: str) -> None:
    assert address_bucket(client) == bucket


async def test_junk_from_a_shared_address_does_not_lock_out_a_key_verified_there_before(
    clock: FakeClock,
) -> None:
    # Given a valid key already used from a shared address (a NAT, a proxy)
    real, _ = generate_key()
    gate = admission(clock, key_burst=5, unauthenticated_burst=2)
    lookup = FakeKeys(real)
    assert await outcomes(gate, real, "10.6.6.6", lookup, 1) == ["viewer"]

    # When someone else at that address sends junk until its bucket is empty
    junk = await outcomes(gate, "not-a-key", "10.6.6.6", lookup, 5)

    # Then the valid key still gets through, and is still looked up every time
    assert junk == ["anonymous", "anonymous", "limited", "limited", "limited"]
    before = lookup.lookups
    assert await outcomes(gate, real, "10.6.6.6", lookup, 2) == ["viewer", "viewer"]
    assert lookup.lookups == before + 2


async def test_a_verified_key_revoked_since_is_refused_and_proves_nothing(
    clock: FakeClock,
) -> None:
    real, _ = generate_key()
    gate = admission(clock, key_burst=5, unauthenticated_burst=1)
    lookup = FakeKeys(real)
    assert await outcomes(gate, real, "10.6.6.6", lookup, 1) == ["viewer"]

    del lookup.viewers[real]  # revoked

    assert await outcomes(gate, real, "10.6.6.6", lookup, 3) == [
        "anonymous",
        "limited",
        "limited",
    ]


async def test_concurrent_forged_keys_cost_no_more_lookups_than_the_address_burst(
    clock: FakeClock,
) -> None:
    # Given a lookup that takes a while (calls arrive while earlier ones are looked up)
    gate = admission(clock, unauthenticated_burst=2)
    lookup = FakeKeys()

    async def slow_lookup(key: str) -> Viewer | None:
        await asyncio.sleep(0.01)
        return await lookup(key)

    async def one() -> str:
        try:
            await gate.admit(generate_key()[0], "10.0.0.1", slow_lookup)
        except RateLimited:
            return "limited"
        return "anonymous"

    # When 50 forged keys arrive at once
    results = await asyncio.gather(*(one() for _ in range(50)))

    # Then only the burst reached the database
    assert sorted(results).count("anonymous") == 2
    assert lookup.lookups == 2
