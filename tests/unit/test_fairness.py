"""Fairness: the per-subscription cap, and how long an attempt over it is put off."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from app.delivery.fairness import (
    InFlight,
    Slot,
    default_cap,
    default_suspect_budget,
    default_unproven_budget,
    postponement_seconds,
    slow_after_seconds,
)


def test_a_subscription_gets_at_most_cap_slots_and_gets_them_back() -> None:
    in_flight = InFlight(cap=2)
    busy, other = uuid.uuid4(), uuid.uuid4()

    taken = [in_flight.try_acquire(busy) for _ in range(3)]
    assert [slot is not None for slot in taken] == [True, True, False]
    assert in_flight.try_acquire(other)

    assert taken[0] is not None
    in_flight.release(taken[0])
    assert in_flight.try_acquire(busy)
    assert (in_flight.count(busy), in_flight.count(other)) == (2, 1)


def test_the_default_cap_is_a_fifth_of_the_slots_and_at_least_two() -> None:
    assert [default_cap(n) for n in (1, 10, 50, 200)] == [2, 2, 10, 40]


class NoJitter(random.Random):
    def random(self) -> float:
        return 0.5


@pytest.mark.parametrize(
    ("postponed", "ceiling", "seconds"),
    [(0, 15, 1.0), (1, 15, 2.0), (2, 15, 4.0), (3, 15, 8.0), (4, 15, 15.0), (40, 15, 15.0)],
)
def test_each_postponement_waits_twice_as_long_up_to_the_ceiling(
    postponed: int, ceiling: float, seconds: float
) -> None:
    assert postponement_seconds(postponed, ceiling, NoJitter()) == seconds


def test_a_ceiling_under_a_second_is_kept() -> None:
    assert postponement_seconds(0, 0.5, NoJitter()) == 0.5


def test_the_jitter_stays_within_ten_percent_and_spreads_the_jobs() -> None:
    rng = random.Random(7)
    delays = [postponement_seconds(2, 15, rng) for _ in range(1000)]
    assert 3.6 <= min(delays) < 3.7
    assert 4.3 < max(delays) <= 4.4
    assert len({round(delay, 3) for delay in delays}) > 100


# -- slow and hung endpoints share a bounded number of slots ---------------------------------


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


SLOW_AFTER = 2.0


def worker_of(clock: Clock, concurrency: int = 50) -> InFlight:
    return InFlight.for_worker(concurrency, SLOW_AFTER, clock)


def fill(in_flight: InFlight, subscription: uuid.UUID, wanted: int) -> list[Slot]:
    """Ask for ``wanted`` slots for one subscription; returns those granted."""
    slots = [in_flight.try_acquire(subscription) for _ in range(wanted)]
    return [slot for slot in slots if slot is not None]


def prove(in_flight: InFlight, clock: Clock, subscription: uuid.UUID) -> None:
    """One fast attempt, as a healthy endpoint answers."""
    slot = in_flight.try_acquire(subscription)
    assert slot is not None
    clock.now += 0.01
    in_flight.release(slot)


def test_the_worker_defaults_are_fifths_of_the_slots() -> None:
    assert [default_suspect_budget(n) for n in (1, 10, 50, 200)] == [1, 2, 10, 40]
    assert [default_unproven_budget(n) for n in (1, 10, 50, 200)] == [2, 4, 20, 80]
    assert all(default_unproven_budget(n) >= default_cap(n) for n in range(1, 1001))


def test_a_slow_attempt_is_one_that_takes_the_setting_or_half_the_timeout() -> None:
    assert slow_after_seconds(2.0, 15.0) == 2.0
    assert slow_after_seconds(2.0, 3.0) == 1.5


@pytest.mark.parametrize("hung", [5, 20, 200])
def test_hung_endpoints_together_hold_a_bounded_share_whatever_their_number(hung: int) -> None:
    # given a worker with 50 slots and healthy subscriptions it has seen answer fast
    clock = Clock()
    in_flight = worker_of(clock)
    healthy = [uuid.uuid4() for _ in range(3)]
    for subscription in healthy:
        prove(in_flight, clock, subscription)

    # when `hung` new endpoints each get a backlog of attempts that never answer
    endpoints = [uuid.uuid4() for _ in range(hung)]
    held = [slot for endpoint in endpoints for slot in fill(in_flight, endpoint, 11)]
    # then together they hold at most the unproven budget, even before they look slow
    assert len(held) <= default_unproven_budget(50) == 20

    # and once their attempts are old they are suspect, and get no more slots
    clock.now += SLOW_AFTER
    assert {in_flight.kind(endpoint) for endpoint in endpoints if in_flight.count(endpoint)} == {
        "suspect"
    }
    assert [slot for endpoint in endpoints for slot in fill(in_flight, endpoint, 5)] == []

    # and, round after round of timeouts, they never hold more than that; once each of
    # them has been seen hanging, they hold at most the suspect budget
    for _ in range(hung):
        if all(in_flight.kind(endpoint) == "suspect" for endpoint in endpoints):
            break
        for slot in held:
            in_flight.release(slot)
        held = [slot for endpoint in endpoints for slot in fill(in_flight, endpoint, 11)]
        assert len(held) <= 20
        clock.now += SLOW_AFTER
    for slot in held:
        in_flight.release(slot)
    held = [slot for endpoint in endpoints for slot in fill(in_flight, endpoint, 11)]
    assert {in_flight.kind(endpoint) for endpoint in endpoints} == {"suspect"}
    assert len(held) == default_suspect_budget(50) == 10

    # while the healthy ones keep every other slot, their cap each
    granted = [fill(in_flight, subscription, 20) for subscription in healthy]
    assert [len(slots) for slots in granted] == [10, 10, 10]
    # and a new subscription still gets the rest of the unproven budget
    assert len(fill(in_flight, uuid.uuid4(), 20)) == 10


def test_a_new_endpoint_gets_a_burst_of_its_cap_at_once() -> None:
    clock = Clock()
    in_flight = worker_of(clock)
    assert len(fill(in_flight, uuid.uuid4(), 20)) == default_cap(50)


def test_an_endpoint_that_answers_slowly_is_suspect_until_an_attempt_is_fast_again() -> None:
    clock = Clock()
    in_flight = worker_of(clock)
    endpoint = uuid.uuid4()
    prove(in_flight, clock, endpoint)
    assert in_flight.kind(endpoint) == "proven"

    slot = in_flight.try_acquire(endpoint)
    assert slot is not None
    clock.now += SLOW_AFTER - 0.01
    assert in_flight.kind(endpoint) == "proven"
    clock.now += 0.01
    assert in_flight.kind(endpoint) == "suspect"  # still in flight, but too long already
    assert in_flight.held() == (1, 1)
    in_flight.release(slot)
    assert in_flight.kind(endpoint) == "suspect"  # the last attempt was slow

    prove(in_flight, clock, endpoint)
    assert in_flight.kind(endpoint) == "proven"
    assert in_flight.held() == (0, 0)


@pytest.mark.parametrize("kind", ["unknown", "suspect", "proven"])
def test_a_slot_given_back_without_a_request_leaves_the_subscription_as_it_was(
    kind: str,
) -> None:
    # Given a subscription of each kind
    clock = Clock()
    in_flight = worker_of(clock)
    endpoint = uuid.uuid4()
    if kind != "unknown":
        prove(in_flight, clock, endpoint)
    if kind == "suspect":
        slow = in_flight.try_acquire(endpoint)
        assert slow is not None
        clock.now += SLOW_AFTER
        in_flight.release(slow)
    assert in_flight.kind(endpoint) == kind

    # When an attempt takes a slot at once and gives it back unused (re-queued for a
    # slot of its delivery rate), or much later
    for held_for in (0.0, SLOW_AFTER * 2):
        slot = in_flight.try_acquire(endpoint)
        assert slot is not None
        clock.now += held_for
        in_flight.release(slot, attempted=False)

        # Then the slot is free again, and the subscription the kind it was
        assert in_flight.count(endpoint) == 0
        assert in_flight.kind(endpoint) == kind


def test_without_budgets_only_the_cap_applies() -> None:
    clock = Clock()
    in_flight = InFlight(cap=3, slow_after=1.0, clock=clock)
    endpoints = [uuid.uuid4() for _ in range(30)]
    held = [slot for endpoint in endpoints for slot in fill(in_flight, endpoint, 5)]
    assert len(held) == 90


# -- an attempt at its subscription's cap waits for the next slot, unless it is suspect -----


async def waiters(
    in_flight: InFlight, subscription: uuid.UUID, count: int
) -> list[asyncio.Task[Slot | None]]:
    """``count`` attempts asking for a slot, each in a task of its own, started."""
    tasks = [asyncio.create_task(in_flight.acquire(subscription)) for _ in range(count)]
    await asyncio.sleep(0)
    return tasks


async def test_an_attempt_at_the_cap_of_a_fast_endpoint_gets_the_next_slot_it_frees() -> None:
    clock = Clock()
    in_flight = worker_of(clock, concurrency=10)  # cap 2
    fast = uuid.uuid4()
    prove(in_flight, clock, fast)
    sending = fill(in_flight, fast, 2)

    # when three more attempts ask: two wait (the cap), the third is put off at once
    first, second, third = await waiters(in_flight, fast, 3)
    assert third.done() and third.result() is None
    assert not first.done() and not second.done()

    # then each slot freed goes to the longest waiting, and the subscription keeps its cap
    clock.now += 0.01
    in_flight.release(sending[0])
    await asyncio.sleep(0)
    assert first.done() and isinstance(first.result(), Slot)
    assert not second.done()
    assert in_flight.count(fast) == 2


async def test_waiting_attempts_are_turned_away_when_the_endpoint_turns_slow() -> None:
    clock = Clock()
    in_flight = worker_of(clock, concurrency=10)
    endpoint = uuid.uuid4()
    prove(in_flight, clock, endpoint)
    sending = fill(in_flight, endpoint, 2)
    waiting = await waiters(in_flight, endpoint, 2)

    # when an attempt in flight ends slowly: the endpoint is suspect
    clock.now += SLOW_AFTER + 1
    in_flight.release(sending[0])
    await asyncio.sleep(0)

    # then no waiting attempt gets its slot: each is put off
    assert [task.done() and task.result() for task in waiting] == [None, None]
    assert in_flight.count(endpoint) == 1


async def test_a_suspect_endpoints_attempt_at_the_cap_does_not_wait() -> None:
    clock = Clock()
    in_flight = worker_of(clock, concurrency=10)
    hung = uuid.uuid4()
    fill(in_flight, hung, 2)
    clock.now += SLOW_AFTER  # its attempts in flight are slow_after old
    assert in_flight.kind(hung) == "suspect"
    [waiter] = await waiters(in_flight, hung, 1)
    assert waiter.done() and waiter.result() is None


async def test_an_attempt_refused_by_a_budget_rather_than_the_cap_does_not_wait() -> None:
    clock = Clock()
    in_flight = worker_of(clock, concurrency=10)  # cap 2, unproven budget 4
    new = [uuid.uuid4() for _ in range(3)]
    fill(in_flight, new[0], 2)
    fill(in_flight, new[1], 2)
    # the third new endpoint has no attempt in flight: the unproven budget refuses it
    [waiter] = await waiters(in_flight, new[2], 1)
    assert waiter.done() and waiter.result() is None


async def test_a_wait_ends_after_slow_after_with_nothing_freed() -> None:
    in_flight = InFlight(cap=1, slow_after=0.05)
    endpoint = uuid.uuid4()
    assert in_flight.try_acquire(endpoint) is not None
    assert await asyncio.wait_for(in_flight.acquire(endpoint), timeout=5) is None


async def test_a_cancelled_waiter_passes_a_slot_handed_to_it_on_to_the_next() -> None:
    clock = Clock()
    in_flight = worker_of(clock, concurrency=10)
    endpoint = uuid.uuid4()
    prove(in_flight, clock, endpoint)
    sending = fill(in_flight, endpoint, 2)
    first, second = await waiters(in_flight, endpoint, 2)

    # when the first is handed a slot and cancelled in the same turn of the loop
    in_flight.release(sending[0])
    first.cancel()
    await asyncio.sleep(0)
    await asyncio.sleep(0)

    # then the slot went on to the second, and none is lost
    assert first.cancelled()
    assert second.done() and isinstance(second.result(), Slot)
    assert in_flight.count(endpoint) == 2
