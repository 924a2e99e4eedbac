"""Rate limits on /graphql: per verified API key, and per client address for everything else.

Every HTTP request and every websocket connection and operation goes through
:meth:`Admission.admit`, in this order:

1. a key whose own bucket is empty is refused at once, before any database work (looking
   spends nothing, so a forged key that copies a real key's public prefix cannot drain it);
2. a client address whose bucket for unauthenticated calls is empty is refused before the
   key is looked up: forged keys cost a database lookup each only up to that bucket;
3. the key is verified (one lookup);
4. a verified key spends a token of its own bucket (by its prefix); anything else (no key, a
   malformed, unknown or revoked one) spends a token of the address's bucket.

So buckets exist only for keys that were verified and for addresses: a forged key never
gets a fresh bucket, and one address's failures never slow a valid key used elsewhere.
IPv6 addresses share a bucket per /64, the block one subscriber usually holds. An empty
bucket answers HTTP 429 with a GraphQL-shaped error (``extensions.code = "RATE_LIMITED"``,
``retryAfter`` in seconds) and a ``Retry-After`` header. Buckets live in the API process:
with N processes behind a balancer a key gets up to N times the rate.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from graphql import GraphQLFormattedError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.api_keys import prefix_of
from app.viewer import Viewer

MAX_BUCKETS = 100_000


@dataclass
class Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Token buckets by name, the least recently used dropped past MAX_BUCKETS.

    A rate of 0 turns them off: every take is granted.
    """

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def take(self, name: str) -> float:
        """Take one token; returns 0 when granted, else seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        bucket = self._buckets.pop(name, None) or Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self._buckets[name] = bucket
        if len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def wait(self, name: str) -> float:
        """Seconds until ``name`` has a token (0: now), taking nothing and creating nothing."""
        bucket = self._buckets.get(name)
        if self.rate <= 0 or bucket is None:
            return 0.0
        tokens = min(self.burst, bucket.tokens + (self._clock() - bucket.updated) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate


class RateLimited(Exception):
    """A bucket is empty; ``retry_after`` whole seconds until the next token."""

    def __init__(self, wait: float) -> None:
        self.retry_after = max(1, math.ceil(wait))
        super().__init__(f"Rate limit exceeded; retry after {self.retry_after} s.")

    @property
    def error(self) -> GraphQLFormattedError:
        """The GraphQL error that says so."""
        return {
            "message": str(self),
            "extensions": {"code": "RATE_LIMITED", "retryAfter": self.retry_after},
        }


Verify = Callable[[str], Awaitable[Viewer | None]]


class Admission:
    """Who may make a call now: the two kinds of buckets and the order they are used in."""

    def __init__(self, keys: TokenBuckets, unauthenticated: TokenBuckets) -> None:
        self.keys = keys
        self.unauthenticated = unauthenticated

    async def admit(self, key: str | None, client: str | None, verify: Verify) -> Viewer | None:
        """The viewer ``key`` stands for (None: unauthenticated), or raise RateLimited.

        ``client`` is the caller's address (None when unknown); ``verify`` looks the key up.
        """
        address = address_bucket(client)
        prefix = prefix_of(key) if key is not None else None
        if prefix is not None:
            _refuse_if_waiting(self.keys.wait(prefix))
        _refuse_if_waiting(self.unauthenticated.wait(address))
        viewer = await verify(key) if key is not None and prefix is not None else None
        if viewer is None:
            _refuse_if_waiting(self.unauthenticated.take(address))
            return None
        _refuse_if_waiting(self.keys.take(viewer.key_prefix))
        return viewer


def _refuse_if_waiting(wait: float) -> None:
    if wait > 0:
        raise RateLimited(wait)


def address_bucket(client: str | None) -> str:
    """The bucket name of a client address: the address, or its /64 for IPv6."""
    if client is None:
        return "address:unknown"
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return f"address:{client}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"address:{address.ipv4_mapped}"
        return f"address:{ipaddress.IPv6Network((address, 64), strict=False)}"
    return f"address:{address}"


async def rate_limited_response(_: Request, error: Exception) -> Response:
    """429 with the GraphQL error and ``Retry-After`` (a Starlette exception handler)."""
    assert isinstance(error, RateLimited)
    return JSONResponse(
        {"errors": [error.error]},
        status_code=429,
        headers={"retry-after": str(error.retry_after)},
    )
