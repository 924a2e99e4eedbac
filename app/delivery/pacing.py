"""Pacing: a subscription's delivery rate, kept by every worker process together.

A subscription may take at most ``max_deliveries_per_second`` deliveries a second,
measured at the receiver over any one-second window. A token bucket with a burst of a
second's worth does not keep that: a full bucket goes at once and its refill follows
within the same second, twice the rate. Attempts are paced instead (GCRA without a burst
allowance): each reserves a *slot*, a subscription's slots one spacing apart
(:func:`slot_spacing`). Slots kept to the dot put at most ``rate`` deliveries in any
one-second window. A receiver sees them through the jitter of the way there (the network,
the workers' scheduling and its own), so the spacing allows for some: while deliveries'
delays differ by less than ``JITTER_ALLOWANCE_SECONDS``, a window holds at most
``rate + 1``, the stated tolerance. That is free up to ten a second, and costs up to a
tenth of the rate above.

The reservation is one statement on the subscription's pacing row (``reserve_delivery_slot``
in sql/queries/pacing.sql): the slot is the first free moment or now, whichever is later,
and the first free moment moves on by one spacing. Workers reserving at once queue on the
row's lock for that statement only and never share a slot. Unlimited subscriptions never
run it: the attempt's context row carries the rate.

What an attempt does with its slot (:func:`how_to_wait`):

- **now**: it goes at once.
- **soon** (within the *lead*, :func:`lead_seconds`): it waits for it in place.
- **later**: it is re-queued, not an attempt (nothing recorded, its number unchanged), due
  a lead before its slot, its job carrying the slot (``AttemptJob.slot``) so that it does
  not reserve again when it runs: a backlog of n attempts costs n reservations, however
  often the workers wake up. Until then it holds no worker slot, so other subscriptions'
  deliveries never wait for it. When it runs, it waits in place for its slot.

Punctuality is what keeps the rate at the receiver: a slot used late bunches up with the
ones on time after it. So a paced attempt is taken by a worker a lead ahead (the fetch,
loading its delivery and the pool's queue under load all happen before its slot), waits
the rest in place, and goes on the dot; the time of both waits is the database's clock
against the slot (``OutgoingDelivery.loaded_at``), so a worker whose own clock is off
waits as long all the same. Paced jobs run at a priority above fresh work
(``PACED_PRIORITY``: a burst of new deliveries does not make them late; per subscription
only ``rate`` of them fall due a second), and the worker that queued one wakes the
workers when it is due (:class:`WakeUps`; scheduled jobs are otherwise found only by
polling). The lead is a few slots, so a subscription has only a few attempts waiting in
place at any time.

A slot is never used early, and seldom much later than it is: an attempt that comes for
its slot more than ``LATE_SLOT_SECONDS`` late (its job taken late: every worker busy, the
database or the pool slow to load it, the queuing worker restarted before its wake-up; or
its wait in place overrun by a busy event loop) gives it up and reserves a new one
(:func:`wait_for_slot`); sent late, it would go together with the slots after it. An
attempt gives up at most ``MAX_MISSED_SLOTS`` that way, then goes however late: a worker
late every time would otherwise pass a backlog's slots round and round and send nothing.
What that check cannot see is the load's answer on its way back, and the time from the
end of the wait to the request leaving. Paced attempts never wait for their
subscription's in-flight cap either (app/delivery/attempts.py). A job that Procrastinate
runs again (it failed, or its worker died) reserves a new slot; the old one
passes unused. A change of the rate (set, changed or removed) forgets the subscription's
pacing row (``restart_pacing``) and hands every waiting attempt a new slot
(``repace_waiting_attempts`` in sql/queries/queue.sql), in the transaction of the change:
the next attempt starts from now, even at a rate set back to the one the old slots had.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from procrastinate.jobs import DEFAULT_PRIORITY

from app.delivery import metrics
from app.delivery.outgoing import OutgoingDelivery
from app.store.database import Database
from app.store.queue import AttemptJob, defer_attempts
from app.store.services import Services

logger = logging.getLogger(__name__)

# How much more one delivery's delay may be than another's, and any one-second window still
# hold at most rate + 1 (see slot_spacing).
JITTER_ALLOWANCE_SECONDS = 0.1
# How late an attempt may come for its slot and still use it: half the jitter allowance,
# the other half left for the way to the receiver. A later one reserves a new slot.
LATE_SLOT_SECONDS = JITTER_ALLOWANCE_SECONDS / 2
# How many slots one attempt may give up that way; then it goes late rather than never.
MAX_MISSED_SLOTS = 2
# How long ahead of its slot a paced attempt is taken: a few slots, and at most this.
LEAD_SLOTS = 4
MAX_LEAD_SECONDS = 0.1
# A re-queued job can start only once the job that queued it has finished (the
# per-delivery lock): its wake-up comes at least this long after the re-queue.
REQUEUE_SETTLE_SECONDS = 0.01
# Due paced jobs go before fresh work: late, they would bunch up with the next ones.
PACED_PRIORITY = DEFAULT_PRIORITY + 1
# Wake-ups this close together are one; none comes early.
WAKE_GRANULARITY_SECONDS = 0.001

Wait = Literal["none", "in_place", "requeue"]


def slot_spacing(per_second: int) -> timedelta:
    """The time between two slots of a rate, rounded up to PostgreSQL's microsecond.

    Two arrivals k slots apart whose delays differ by d are k * spacing - d apart, and in
    one window less than a second. With the spacing at least 1/rate and d = 0, k < rate:
    at most ``rate`` arrivals. With it at least (1 + J) / (rate + 1) and d < J,
    k < rate + 1: at most ``rate + 1``, J being ``JITTER_ALLOWANCE_SECONDS``.
    """
    if per_second < 1:
        raise ValueError("a delivery rate is at least 1 a second")
    seconds = max(1 / per_second, (1 + JITTER_ALLOWANCE_SECONDS) / (per_second + 1))
    # Rounded to a nanosecond first: float division leaves a trace past the microsecond
    # (1.05 / 1000 is 1050.0000000000002 of them).
    return timedelta(microseconds=math.ceil(round(seconds * 1_000_000, 3)))


def lead_seconds(per_second: int) -> float:
    """How long before its slot an attempt is taken, to wait the rest in place: the slots
    of a few spacings, so that few attempts of a subscription wait at once."""
    return min(MAX_LEAD_SECONDS, LEAD_SLOTS * slot_spacing(per_second).total_seconds())


def seconds_until(slot: datetime, now: datetime) -> float:
    """How long until ``slot``, both on the database's clock; 0 once it has come."""
    return max(0.0, (slot - now).total_seconds())


@dataclass(frozen=True)
class Reservation:
    """A slot reserved for one attempt, and the database's clock when it was: the two
    compared on one clock, so a worker whose own clock is off waits as long all the same."""

    slot: datetime
    now: datetime

    @property
    def wait_seconds(self) -> float:
        return seconds_until(self.slot, self.now)


def how_to_wait(wait_seconds: float, per_second: int) -> Wait:
    """How an attempt waits for a slot that far ahead: not at all, in place (within the
    lead), or re-queued."""
    if wait_seconds <= 0:
        return "none"
    if wait_seconds <= lead_seconds(per_second):
        return "in_place"
    return "requeue"


def wait_for_held_slot(slot: datetime, loaded_at: datetime, per_second: int) -> float:
    """How long an attempt taken for the slot it holds waits in place: until the slot, by
    the database's clock when its delivery was loaded, and never longer than a lead (a
    job is due a lead ahead of its slot, so only a bug could ask for more)."""
    return min(seconds_until(slot, loaded_at), lead_seconds(per_second))


async def reserve_slot(db: Database, subscription_id: uuid.UUID, per_second: int) -> Reservation:
    """Reserve the next slot of a subscription limited to ``per_second``."""
    row = await db.fetch_one(
        "reserve_delivery_slot",
        subscription_id=subscription_id,
        per_second=per_second,
        spacing=slot_spacing(per_second),
    )
    if row is None:
        raise RuntimeError(f"reserving a slot of subscription {subscription_id} returned nothing")
    return Reservation(slot=row["slot"], now=row["now"])


async def pace(
    services: Services,
    job: AttemptJob,
    subscription_id: uuid.UUID,
    per_second: int,
    wake_ups: WakeUps | None,
) -> float | None:
    """Reserve the slot of ``job``'s attempt: the seconds to wait for it in place (0: go
    now), or None when the attempt was re-queued for it (with ``wake_ups`` set to wake the
    workers when it is due)."""
    reservation = await reserve_slot(services.db, subscription_id, per_second)
    # The wait counts from the database's clock at the reservation; measured from the
    # answer's arrival on the loop's clock, the wake-up can only come later, never early.
    reserved_at = asyncio.get_running_loop().time()
    wait = reservation.wait_seconds
    how = how_to_wait(wait, per_second)
    if how != "none":
        metrics.PACED_ATTEMPTS.labels(how).inc()
    if how != "requeue":
        return wait
    lead = lead_seconds(per_second)
    async with services.db.transaction() as tx:
        await defer_attempts(
            services.queue,
            tx,
            [replace(job, slot=reservation.slot)],
            schedule_at=reservation.slot - timedelta(seconds=lead),
            priority=PACED_PRIORITY,
        )
    if wake_ups is not None:
        wake_ups.at(reserved_at + max(wait - lead, REQUEUE_SETTLE_SECONDS))
    return None


def missed(slot: datetime, loaded_at: datetime) -> bool:
    """Whether an attempt holding ``slot`` came too late to use it: its delivery was
    loaded (the database's clock) more than ``LATE_SLOT_SECONDS`` after it."""
    return (loaded_at - slot).total_seconds() > LATE_SLOT_SECONDS


async def wait_for_slot(
    services: Services, delivery: OutgoingDelivery, job: AttemptJob, wake_ups: WakeUps | None
) -> bool:
    """Wait until ``job``'s attempt of ``delivery`` may go: True when it may (at once
    without a delivery rate), False when it was re-queued for a slot it reserved.

    A slot the attempt comes too late for (its job taken late, the wait in place
    overrunning) is given up for a new one: sent late, it would go together with the slots
    after it. But an attempt gives up at most ``MAX_MISSED_SLOTS``, counted across the
    runs of its job (``AttemptJob.missed``): a worker late every time would otherwise
    re-queue a backlog round and round, sending nothing."""
    per_second = delivery.endpoint.max_deliveries_per_second
    if per_second is None:
        return True
    subscription_id = delivery.endpoint.subscription_id
    wait: float | None = None
    held, loaded_at = job.slot, delivery.loaded_at
    if held is not None and loaded_at is not None:
        if missed(held, loaded_at) and job.missed < MAX_MISSED_SLOTS:
            job = gave_up_a_slot(job)
        else:
            wait = wait_for_held_slot(held, loaded_at, per_second)
    while True:
        if wait is None:
            wait = await pace(services, job, subscription_id, per_second, wake_ups)
            if wait is None:
                return False
        if await overrun(wait) <= LATE_SLOT_SECONDS or job.missed >= MAX_MISSED_SLOTS:
            return True
        job = gave_up_a_slot(job)
        wait = None


def gave_up_a_slot(job: AttemptJob) -> AttemptJob:
    """``job``, counting one more slot its attempt came too late for (and the metric)."""
    metrics.MISSED_SLOTS.inc()
    return replace(job, missed=job.missed + 1)


async def overrun(seconds: float) -> float:
    """Sleep ``seconds`` (if any); how much longer than that it took (a busy event loop
    wakes the sleeper late)."""
    if seconds <= 0:
        return 0.0
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    await asyncio.sleep(seconds)
    return max(0.0, loop.time() - until)


class WakeUps:
    """Wake-ups of the delivery workers at the slots of the paced jobs this process queued.

    :meth:`at` asks for one no earlier than a moment of the event loop's clock; those in
    the same ``granularity``-long tick of that clock share one (at the tick's end).
    ``wake`` is what waking is (a notification to every listening worker); one that fails
    is logged, and polling finds the job instead, up to a polling interval late.
    """

    def __init__(
        self,
        wake: Callable[[], Awaitable[object]],
        *,
        granularity: float = WAKE_GRANULARITY_SECONDS,
    ) -> None:
        self._wake = wake
        self._granularity = granularity
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._running: set[asyncio.Task[None]] = set()

    def at(self, moment: float) -> None:
        """Wake the workers at ``moment`` (``loop.time()``'s clock) or just after."""
        tick = math.ceil(moment / self._granularity)
        if tick not in self._timers:
            loop = asyncio.get_running_loop()
            self._timers[tick] = loop.call_at(tick * self._granularity, self._fire, tick)

    @property
    def pending(self) -> int:
        """Wake-ups still to come."""
        return len(self._timers)

    def close(self) -> None:
        """Forget every wake-up still to come (the worker stops; polling finds the jobs)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._running:
            task.cancel()

    def _fire(self, tick: int) -> None:
        del self._timers[tick]
        task = asyncio.get_running_loop().create_task(self._run())
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self) -> None:
        try:
            await self._wake()
        except Exception as error:
            logger.warning(
                "could not wake the workers for a paced attempt (%s); polling will find it",
                type(error).__name__,
            )
