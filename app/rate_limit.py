"""Per-API-key rate limiting: a token bucket in front of /graphql.

Each key (by its public prefix; requests without a well-formed key by client address)
gets ``burst`` tokens refilled at ``rate`` per second. An empty bucket answers HTTP 429
with a GraphQL-shaped error (``extensions.code = "RATE_LIMITED"``, ``retryAfter`` in
seconds) and a ``Retry-After`` header, before any database work. Buckets live in the API
process: with N processes behind a balancer a key gets up to N times the rate.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api_keys import prefix_of

MAX_BUCKETS = 100_000


@dataclass
class Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Token buckets by name, the least recently used dropped past MAX_BUCKETS."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def take(self, name: str) -> float:
        """Take one token; returns 0 when granted, else seconds until one is available."""
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


class RateLimit:
    """ASGI middleware applying TokenBuckets to HTTP requests on one path."""

    def __init__(self, app: ASGIApp, buckets: TokenBuckets, path: str = "/graphql") -> None:
        self.app = app
        self.buckets = buckets
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or self.buckets.rate <= 0:
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(_caller(scope))
        if wait == 0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        response = JSONResponse(
            {
                "errors": [
                    {
                        "message": f"Rate limit exceeded; retry after {retry_after} s.",
                        "extensions": {"code": "RATE_LIMITED", "retryAfter": retry_after},
                    }
                ]
            },
            status_code=429,
            headers={"retry-after": str(retry_after)},
        )
        await response(scope, receive, send)


def _caller(scope: Scope) -> str:
    headers = dict(scope.get("headers") or [])
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    _, _, key = authorization.partition(" ")
    prefix = prefix_of(key.strip())
    if prefix is not None:
        return prefix
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"
