"""Fairness: one slow or hung endpoint must not take every worker slot.

Each worker process lets at most ``cap`` attempts per subscription be in flight at once.
An attempt over the cap is not made: its job is re-queued a little later (no attempt is
recorded, its number does not change), and the slot goes to another subscription's
delivery. With the default concurrency of 50 and a cap of 10, a receiver that hangs
until the timeout holds 10 slots of each worker and 40 stay free for everyone else.

Each time the same attempt is put off again it waits twice as long, up to the request
timeout (by then a hung request has ended and freed its slot): a hung endpoint with a
thousand waiting deliveries re-queues about a thousand jobs per timeout, not per second.
A little jitter keeps the put-off jobs from coming back all at once.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter

FIRST_POSTPONEMENT_SECONDS = 1.0
JITTER = 0.1


def postponement_seconds(postponed: int, ceiling: float, rng: random.Random | None = None) -> float:
    """How long to put off an attempt already put off ``postponed`` times: 1, 2, 4... s
    and never over ``ceiling``, give or take 10 %."""
    base = min(FIRST_POSTPONEMENT_SECONDS * 2.0 ** min(postponed, 16), ceiling)
    return base * (1 + JITTER * (2 * (rng or random).random() - 1))


def default_cap(concurrency: int) -> int:
    """A fifth of the slots, at least 2: enough throughput for one busy healthy endpoint."""
    return max(2, concurrency // 5)


class InFlight:
    """Attempts in flight per subscription, in this process (asyncio: no locking needed)."""

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError("the in-flight cap must be at least 1")
        self.cap = cap
        self._counts: Counter[uuid.UUID] = Counter()

    def try_acquire(self, subscription_id: uuid.UUID) -> bool:
        if self._counts[subscription_id] >= self.cap:
            return False
        self._counts[subscription_id] += 1
        return True

    def release(self, subscription_id: uuid.UUID) -> None:
        self._counts[subscription_id] -= 1
        if self._counts[subscription_id] <= 0:
            del self._counts[subscription_id]

    def count(self, subscription_id: uuid.UUID) -> int:
        return self._counts[subscription_id]
