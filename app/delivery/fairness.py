"""Fairness: slow or hung endpoints must not take every worker slot, however many there are.

Each worker process keeps, per subscription, the attempts it has in flight and whether
the last one it finished was fast. That sorts subscriptions into three kinds:

- **proven**: the last attempt finished within ``slow_after`` seconds and none in flight
  is older than that;
- **unknown**: this worker has not finished an attempt for it yet;
- **suspect**: an attempt is in flight for longer than ``slow_after``, or the last one took
  that long (a timeout, a receiver that dawdles, an address that drops SYNs).

Every subscription has at most ``cap`` attempts in flight. On top of that, unknown and
suspect subscriptions TOGETHER hold at most ``unproven_budget`` slots, and suspect ones at
most ``suspect_budget`` of those. So whatever the number of hung endpoints, proven
subscriptions keep ``concurrency - unproven_budget`` slots, and new subscriptions keep
``unproven_budget - suspect_budget`` once the hung ones are recognised. A per-subscription
cap alone did not do that: five hung subscriptions at a fifth of the slots each held them
all. An endpoint that answers fast again is proven by its next attempt.

What stays possible: a subscription that was fast and starts hanging holds up to ``cap``
slots until its attempts are ``slow_after`` old (then it is suspect and gets no more),
and those it holds end with the request timeout.

An attempt to a subscription at its cap that is not suspect (proven, or unknown: a burst
to a new endpoint) waits in the worker for the next slot that subscription frees, if
fewer than ``cap`` others wait for it already: the worker takes due jobs in batches
(app/store/queue.py), and a burst to one endpoint would otherwise re-queue most of each
batch. A fast endpoint frees a slot within milliseconds; one that turns suspect (an
attempt in flight ``slow_after`` old, or a slow one ended) turns its waiters away, as does
``slow_after`` spent waiting. An attempt to a subscription with a delivery rate never
waits here (app/delivery/attempts.py): it holds a rate slot already, and sent after a wait
it would go together with the slots after it. So a busy subscription holds at most two
caps of the worker's slots, half of them waiting, and none waiting once it is suspect.

An attempt refused a slot (and not waiting) is not made: its job is re-queued a little
later (no attempt is recorded, its number does not change), and the slot goes to another
delivery. Each time
the same attempt is put off again it waits twice as long, up to the request timeout (by
then a hung request has ended and freed its slot): a hung endpoint with a thousand
waiting deliveries re-queues about a thousand jobs per timeout, not per second. A little
jitter keeps the put-off jobs from coming back all at once.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Literal

FIRST_POSTPONEMENT_SECONDS = 1.0
JITTER = 0.1
# Outcomes remembered per worker; the least recently used idle ones are forgotten first
# (a forgotten subscription is unknown again, which the unproven budget bounds).
REMEMBERED_SUBSCRIPTIONS = 10_000

Kind = Literal["proven", "unknown", "suspect"]


def postponement_seconds(postponed: int, ceiling: float, rng: random.Random | None = None) -> float:
    """How long to put off an attempt already put off ``postponed`` times: 1, 2, 4... s
    and never over ``ceiling``, give or take 10 %."""
    base = min(FIRST_POSTPONEMENT_SECONDS * 2.0 ** min(postponed, 16), ceiling)
    return base * (1 + JITTER * (2 * (rng or random).random() - 1))


def default_cap(concurrency: int) -> int:
    """A fifth of the slots, at least 2: enough throughput for one busy healthy endpoint."""
    return max(2, concurrency // 5)


def default_suspect_budget(concurrency: int) -> int:
    """A fifth of the slots, at least 1, for all suspect subscriptions together."""
    return max(1, concurrency // 5)


def default_unproven_budget(concurrency: int) -> int:
    """Two fifths of the slots, at least 2, for unknown and suspect ones together: never
    less than one subscription's cap, so a burst to a new endpoint is not held back."""
    return max(2, 2 * concurrency // 5)


def slow_after_seconds(slow_attempt_seconds: float, request_timeout_seconds: float) -> float:
    """When an attempt counts as slow: the setting, but at most half the request timeout
    (a timed-out attempt must always count as slow)."""
    return min(slow_attempt_seconds, request_timeout_seconds / 2)


@dataclass(frozen=True)
class Slot:
    """One attempt in flight: give it back with :meth:`InFlight.release`."""

    subscription_id: uuid.UUID
    started_at: float


class InFlight:
    """Attempts in flight per subscription, in this process (asyncio: no locking needed).

    Without budgets (the default) only the per-subscription cap applies;
    :meth:`for_worker` gives a worker's defaults.
    """

    def __init__(
        self,
        cap: int,
        *,
        slow_after: float = math.inf,
        suspect_budget: int | None = None,
        unproven_budget: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cap < 1:
            raise ValueError("the in-flight cap must be at least 1")
        self.cap = cap
        self.slow_after = slow_after
        self.suspect_budget = suspect_budget
        self.unproven_budget = unproven_budget
        self._clock = clock
        self._started: dict[uuid.UUID, list[float]] = {}
        self._last_fast: OrderedDict[uuid.UUID, bool] = OrderedDict()
        # Attempts waiting for a slot of a subscription at its cap (not suspect), first come
        # first.
        self._waiting: dict[uuid.UUID, deque[asyncio.Future[Slot | None]]] = {}

    @classmethod
    def for_worker(
        cls, concurrency: int, slow_after: float, clock: Callable[[], float] = time.monotonic
    ) -> InFlight:
        return cls(
            default_cap(concurrency),
            slow_after=slow_after,
            suspect_budget=default_suspect_budget(concurrency),
            unproven_budget=default_unproven_budget(concurrency),
            clock=clock,
        )

    def try_acquire(self, subscription_id: uuid.UUID) -> Slot | None:
        """A slot for an attempt to this subscription, or None when it must wait."""
        now = self._clock()
        started = self._started.get(subscription_id, [])
        if len(started) >= self.cap:
            return None
        kind = self._kind(subscription_id, now)
        if kind != "proven":
            suspect, unproven = self._held(now)
            budget = self.suspect_budget
            if kind == "suspect" and budget is not None and suspect >= budget:
                return None
            if self.unproven_budget is not None and unproven >= self.unproven_budget:
                return None
        self._started.setdefault(subscription_id, []).append(now)
        return Slot(subscription_id, now)

    async def acquire(self, subscription_id: uuid.UUID) -> Slot | None:
        """A slot as :meth:`try_acquire` gives it, or, for a subscription at its cap that
        is not suspect, with fewer than ``cap`` attempts waiting here, the next slot it
        frees before it turns suspect (at most ``slow_after`` from now); None when the
        attempt must be put off."""
        slot = self.try_acquire(subscription_id)
        if slot is not None or not self._may_wait(subscription_id):
            return slot
        handed: asyncio.Future[Slot | None] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.setdefault(subscription_id, deque())
        waiting.append(handed)
        try:
            async with asyncio.timeout(self.slow_after):
                return await handed
        except TimeoutError:
            pass
        except BaseException:
            # Cancelled: a slot handed over meanwhile goes to the next waiter.
            if handed.done() and not handed.cancelled() and (given := handed.result()):
                self.release(given, attempted=False)
            raise
        finally:
            if handed in waiting:
                waiting.remove(handed)
            if not waiting and self._waiting.get(subscription_id) is waiting:
                del self._waiting[subscription_id]
        # The timeout and a hand-over can come in the same turn of the loop.
        return handed.result() if handed.done() and not handed.cancelled() else None

    def _may_wait(self, subscription_id: uuid.UUID) -> bool:
        """Whether an attempt refused a slot may wait for this subscription's next one:
        it was refused by the cap (not a budget), the subscription is not suspect, and
        fewer than ``cap`` wait for it already. Never without a ``slow_after``: nothing
        would end a wait for a hung endpoint."""
        return (
            math.isfinite(self.slow_after)
            and self.count(subscription_id) >= self.cap
            and self._kind(subscription_id, self._clock()) != "suspect"
            and len(self._waiting.get(subscription_id, ())) < self.cap
        )

    def release(self, slot: Slot, *, attempted: bool = True) -> None:
        """The attempt ended: free its slot and remember whether it was fast; the next
        attempt waiting for the subscription gets the slot, unless it turned suspect (then
        every waiting one is turned away). A slot given back without a request made
        (``attempted`` false: re-queued for a rate slot, a waiter cancelled) says nothing
        of the endpoint: the subscription stays the kind it was."""
        subscription_id = slot.subscription_id
        started = self._started[subscription_id]
        started.remove(slot.started_at)
        if not started:
            del self._started[subscription_id]
        now = self._clock()
        if attempted:
            self._last_fast[subscription_id] = now - slot.started_at < self.slow_after
            self._last_fast.move_to_end(subscription_id)
        waiting = self._waiting.get(subscription_id)
        while waiting:
            handed = waiting.popleft()
            if handed.done():  # timed out or cancelled, not yet removed
                continue
            if self._kind(subscription_id, now) == "suspect":
                handed.set_result(None)
                continue
            self._started.setdefault(subscription_id, []).append(now)
            handed.set_result(Slot(subscription_id, now))
            break
        self._forget_idle()

    def count(self, subscription_id: uuid.UUID) -> int:
        return len(self._started.get(subscription_id, []))

    def kind(self, subscription_id: uuid.UUID) -> Kind:
        return self._kind(subscription_id, self._clock())

    def held(self) -> tuple[int, int]:
        """Slots held now by suspect subscriptions, and by unknown and suspect ones."""
        return self._held(self._clock())

    def _kind(self, subscription_id: uuid.UUID, now: float) -> Kind:
        started = self._started.get(subscription_id)
        # Start times are appended in clock order: the first is the oldest.
        if started and now - started[0] >= self.slow_after:
            return "suspect"
        last_fast = self._last_fast.get(subscription_id)
        if last_fast is None:
            return "unknown"
        return "proven" if last_fast else "suspect"

    def _held(self, now: float) -> tuple[int, int]:
        # At most `concurrency` attempts are in flight: this loop stays short.
        suspect = unproven = 0
        for subscription_id, started in self._started.items():
            kind = self._kind(subscription_id, now)
            if kind != "proven":
                unproven += len(started)
                if kind == "suspect":
                    suspect += len(started)
        return suspect, unproven

    def _forget_idle(self) -> None:
        excess = len(self._last_fast) - REMEMBERED_SUBSCRIPTIONS
        if excess <= 0:
            return
        # Oldest first; the few busy ones among them are skipped, so this stops early.
        idle = islice((key for key in self._last_fast if key not in self._started), excess)
        for key in list(idle):
            del self._last_fast[key]
