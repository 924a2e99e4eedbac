"""Rate limits on /graphql: per verified API key, and per client address for everything else.

Every HTTP request and every websocket connection and operation goes through
:meth:`Admission.admit`, in this order:

1. a key whose own bucket is empty is refused at once, before any database work (looking
   spends nothing, so a forged key that copies a real key's public prefix cannot drain it);
2. a key this process verified recently (its digest is remembered) goes straight to the
   lookup: the address gate below is for calls that prove nothing yet, so junk sent from
   a shared address (a NAT, a proxy) cannot lock that address's valid keys out;
3. anything else takes a token of the client address's bucket for unauthenticated calls
   BEFORE the key is looked up (refused when it is empty): forged keys cost a lookup each
   only up to that bucket, however many arrive at once;
4. the key is verified (one lookup, every time: a revoked key stops at once);
5. a verified key spends a token of its own bucket (by its prefix), and a token taken at
   step 3 is given back; anything else (no key, a malformed, unknown or revoked one) has
   spent its address token.

So buckets exist only for keys that were verified and for addresses: a forged key never
gets a fresh bucket, and one address's failures never slow a valid key.
IPv6 addresses share a bucket per /64, the block one subscriber usually holds. An empty
bucket answers HTTP 429 with a GraphQL-shaped error (``extensions.code = "RATE_LIMITED"``,
``retryAfter`` in seconds) and a ``Retry-After`` header. Buckets live in the API process:
with N processes behind a balancer a key gets up to N times the rate.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from graphql import GraphQLFormattedError

from app.core.errors import WebhooksError
from app.core.viewer import Viewer
from app.domain.api_keys import prefix_of
from app.web.refusals import graphql_error

MAX_BUCKETS = 100_000
MAX_VERIFIED_KEYS = 10_000


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

    def give_back(self, name: str) -> None:
        """Return a token taken for a call that turned out to be someone else's to pay."""
        bucket = self._buckets.get(name)
        if bucket is not None:
            bucket.tokens = min(float(self.burst), bucket.tokens + 1)

    def wait(self, name: str) -> float:
        """Seconds until ``name`` has a token (0: now), taking nothing and creating nothing."""
        bucket = self._buckets.get(name)
        if self.rate <= 0 or bucket is None:
            return 0.0
        tokens = min(self.burst, bucket.tokens + (self._clock() - bucket.updated) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate


class RateLimited(WebhooksError):
    """A bucket is empty; ``retry_after`` whole seconds until the next token."""

    def __init__(self, wait: float) -> None:
        self.retry_after = max(1, math.ceil(wait))
        super().__init__(f"Rate limit exceeded; retry after {self.retry_after} s.")

    @property
    def error(self) -> GraphQLFormattedError:
        """The GraphQL error that says so."""
        return graphql_error(str(self), "RATE_LIMITED", retryAfter=self.retry_after)


Verify = Callable[[str], Awaitable[Viewer | None]]


class VerifiedKeys:
    """Digests of keys this process verified lately, the least recently seen dropped past
    ``size``. Only a digest of a whole, verified key gets in: a forger cannot add one."""

    def __init__(self, size: int = MAX_VERIFIED_KEYS) -> None:
        self._size = size
        self._digests: OrderedDict[bytes, None] = OrderedDict()

    @staticmethod
    def digest(key: str) -> bytes:
        return hashlib.sha256(key.encode()).digest()

    def __contains__(self, digest: bytes) -> bool:
        if digest not in self._digests:
            return False
        self._digests.move_to_end(digest)
        return True

    def add(self, digest: bytes) -> None:
        self._digests[digest] = None
        self._digests.move_to_end(digest)
        if len(self._digests) > self._size:
            self._digests.popitem(last=False)

    def discard(self, digest: bytes) -> None:
        self._digests.pop(digest, None)


class Admission:
    """Who may make a call now: the two kinds of buckets and the order they are used in."""

    def __init__(self, keys: TokenBuckets, unauthenticated: TokenBuckets) -> None:
        self.keys = keys
        self.unauthenticated = unauthenticated
        self.verified = VerifiedKeys()

    async def admit(self, key: str | None, client: str | None, verify: Verify) -> Viewer | None:
        """The viewer ``key`` stands for (None: unauthenticated), or raise RateLimited.

        ``client`` is the caller's address (None when unknown); ``verify`` looks the key up.
        """
        prefix = prefix_of(key) if key is not None else None
        if prefix is not None:
            _refuse_if_waiting(self.keys.wait(prefix))
        if key is None or prefix is None:
            # No key, or one that cannot be a key: nothing to look up.
            self.take_unauthenticated(address_bucket(client))
            return None
        return await self._admit_credential(key, client, verify)

    async def admit_session(
        self, session_id: str, client: str | None, verify: Verify
    ) -> Viewer | None:
        """As :meth:`admit`, for a portal session id (``verify`` looks the session up): the
        session spends its minting key's bucket; unknown ones, the address's."""
        return await self._admit_credential(session_id, client, verify)

    def take_unauthenticated(self, address: str) -> None:
        """Take a token of an address's bucket for calls that prove nothing (RateLimited
        when it is empty)."""
        _refuse_if_waiting(self.unauthenticated.take(address))

    async def _admit_credential(
        self, credential: str, client: str | None, verify: Verify
    ) -> Viewer | None:
        address = address_bucket(client)
        digest = VerifiedKeys.digest(credential)
        known = digest in self.verified
        if not known:
            # Taken before the lookup: calls that arrive while lookups run cannot all pass
            # a bucket that is only looked at.
            self.take_unauthenticated(address)
        viewer = await verify(credential)
        if viewer is None:
            if known:
                self.verified.discard(digest)  # revoked since: it proves nothing now
                self.take_unauthenticated(address)
            return None
        if not known:
            self.unauthenticated.give_back(address)
            self.verified.add(digest)
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
