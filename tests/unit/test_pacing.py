"""Pacing: the spacing of a subscription's slots, how an attempt waits for its slot, and
the wake-ups that take paced jobs on time."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from app.delivery.pacing import (
    JITTER_ALLOWANCE_SECONDS,
    LATE_SLOT_SECONDS,
    MAX_LEAD_SECONDS,
    Reservation,
    WakeUps,
    how_to_wait,
    lead_seconds,
    missed,
    overrun,
    seconds_until,
    slot_spacing,
    wait_for_held_slot,
)
from tests.arrivals import busiest_second

RATES = [1, 2, 3, 7, 10, 20, 21, 50, 333, 999, 1000]
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def slots(per_second: int, count: int) -> list[float]:
    """The first ``count`` slots of a subscription, as seconds from the first."""
    spacing = slot_spacing(per_second)
    return [(spacing * index).total_seconds() for index in range(count)]


# --- the slots ----------------------------------------------------------------------------


def test_arrivals_are_counted_per_sliding_second() -> None:
    assert busiest_second([0.0, 0.5, 0.99, 1.0, 1.5]) == 3
    assert busiest_second([0.0, 1.0, 2.0]) == 1
    assert busiest_second([]) == 0


@pytest.mark.parametrize("per_second", RATES)
def test_slots_kept_to_the_dot_never_put_more_than_the_rate_in_a_second(per_second: int) -> None:
    # Given three seconds' worth of one subscription's slots
    moments = slots(per_second, 3 * per_second + 1)

    # Then no one-second window holds more than the rate
    assert busiest_second(moments) <= per_second


@pytest.mark.parametrize("per_second", RATES)
def test_arrivals_up_to_the_jitter_allowance_late_put_at_most_one_more(per_second: int) -> None:
    # Given the slots, each arriving late by anything up to the allowance (worst first: the
    # first of a window late, the next ones on time)
    rng = random.Random(per_second)
    moments = slots(per_second, 3 * per_second + 2)
    worst = [
        moment + (JITTER_ALLOWANCE_SECONDS * 0.999 if index == 0 else 0.0)
        for index, moment in enumerate(moments)
    ]
    shaken = [moment + rng.uniform(0, JITTER_ALLOWANCE_SECONDS * 0.999) for moment in moments]

    # Then no one-second window holds more than the rate and one
    assert busiest_second(worst) <= per_second + 1
    assert busiest_second(shaken) <= per_second + 1


def test_slots_exactly_one_over_the_rate_apart_would_let_jitter_put_three_more() -> None:
    # Given 50 a second and the first three arrivals late by 50, 30 and 10 ms (within the
    # allowance), the others on time
    delays = (0.0499, 0.0299, 0.0099)

    def arrivals(moments: list[float]) -> list[float]:
        return [
            moment + (delays[i] if i < len(delays) else 0.0) for i, moment in enumerate(moments)
        ]

    # Then slots exactly 20 ms apart would put 53 in the second after the first arrival,
    # while the spacing the pacing uses keeps it to one more than the rate
    assert busiest_second(arrivals([index / 50 for index in range(60)])) == 53
    assert busiest_second(arrivals(slots(50, 60))) <= 51


@pytest.mark.parametrize("per_second", RATES)
def test_the_spacing_costs_no_more_of_the_rate_than_the_allowance_needs(per_second: int) -> None:
    spacing = slot_spacing(per_second).total_seconds()
    needed = max(1 / per_second, (1 + JITTER_ALLOWANCE_SECONDS) / (per_second + 1))

    assert needed - 1e-9 <= spacing < needed + 1e-6
    # Up to ten a second the allowance is free; above, slots come up to a tenth slower.
    assert 1 / spacing >= per_second * (0.9 if per_second > 10 else 0.99999)


def test_a_rate_under_one_has_no_spacing() -> None:
    with pytest.raises(ValueError):
        slot_spacing(0)


# --- waiting for a slot -------------------------------------------------------------------


def test_the_lead_is_a_few_slots_and_at_most_a_tenth_of_a_second() -> None:
    assert lead_seconds(1) == MAX_LEAD_SECONDS
    assert lead_seconds(50) == pytest.approx(4 * slot_spacing(50).total_seconds())
    assert lead_seconds(1000) < 0.005


@pytest.mark.parametrize(
    ("wait", "how"),
    [(0.0, "none"), (0.001, "in_place"), (0.086, "in_place"), (0.0864, "requeue"), (30, "requeue")],
)
def test_a_slot_now_goes_one_within_the_lead_waits_in_place_a_later_one_is_requeued(
    wait: float, how: str
) -> None:
    # 50 a second: a lead of four spacings, about 86 ms
    assert how_to_wait(wait, 50) == how


def test_a_reservation_waits_by_the_databases_clock_and_never_less_than_nothing() -> None:
    ahead = Reservation(slot=NOW + timedelta(milliseconds=250), now=NOW)
    past = Reservation(slot=NOW, now=NOW + timedelta(seconds=1))

    assert ahead.wait_seconds == 0.25
    assert past.wait_seconds == 0.0
    assert seconds_until(NOW, NOW) == 0.0


@pytest.mark.parametrize(
    ("slot_in", "waits"),
    [
        (timedelta(milliseconds=-30), 0.0),
        (timedelta(milliseconds=30), 0.03),
        (timedelta(hours=1), 0.1),
    ],
    ids=["slot-passed", "slot-within-the-lead", "slot-far-ahead"],
)
def test_a_held_slot_is_waited_for_in_place_up_to_a_lead(slot_in: timedelta, waits: float) -> None:
    # A job taken a little late goes at once; one taken a lead early waits for its slot; one that
    # somehow came far too early waits no more than a lead (it holds its worker slot)
    assert wait_for_held_slot(NOW + slot_in, NOW, 5) == pytest.approx(waits)


def test_a_slot_is_missed_by_an_attempt_loaded_more_than_half_the_allowance_after_it() -> None:
    # Late by up to half the jitter allowance, a slot is still used (the other half is
    # the way to the receiver's); later, it would bunch up with the slots after it
    assert LATE_SLOT_SECONDS == JITTER_ALLOWANCE_SECONDS / 2
    assert not missed(NOW, NOW + timedelta(seconds=LATE_SLOT_SECONDS))
    assert not missed(NOW, NOW - timedelta(hours=1))
    assert missed(NOW, NOW + timedelta(seconds=LATE_SLOT_SECONDS, microseconds=1))


async def test_an_overrun_is_how_much_longer_than_asked_a_wait_took() -> None:
    # A loop busy for 0.1 s during a wait of 0.02 s wakes the waiter late by about 0.08 s
    loop = asyncio.get_running_loop()
    loop.call_later(0.005, time.sleep, 0.1)
    assert 0.07 < await overrun(0.02) < 0.5
    # An unhindered wait overruns by little, and no wait by nothing
    assert await overrun(0.01) < LATE_SLOT_SECONDS
    assert await overrun(0) == 0.0


# --- wake-ups -------------------------------------------------------------------------------


class Wakes:
    """Counts wake-ups and when they came (the loop's clock)."""

    def __init__(self, *, fail: bool = False) -> None:
        self.times: list[float] = []
        self.fail = fail

    async def __call__(self) -> None:
        self.times.append(asyncio.get_running_loop().time())
        if self.fail:
            raise ConnectionError("the database is away")


async def test_a_wake_up_comes_at_its_moment_never_before() -> None:
    # Given wake-ups asked for 50 and 120 ms from now
    wakes = Wakes()
    wake_ups = WakeUps(wakes)
    loop = asyncio.get_running_loop()
    first, second = loop.time() + 0.05, loop.time() + 0.12

    # When they come
    wake_ups.at(first)
    wake_ups.at(second)
    assert wake_ups.pending == 2
    await asyncio.sleep(0.2)

    # Then each came once, at its moment or just after
    assert len(wakes.times) == 2
    assert first <= wakes.times[0] < first + 0.03
    assert second <= wakes.times[1] < second + 0.03
    assert wake_ups.pending == 0


async def test_wake_ups_within_one_tick_of_the_granularity_are_one() -> None:
    wakes = Wakes()
    wake_ups = WakeUps(wakes, granularity=0.01)
    # Three moments inside one tick of 10 ms (a tick's boundary between them would make two)
    moment = (math.floor(asyncio.get_running_loop().time() / 0.01) + 3) * 0.01 + 0.0005

    for offset in (0.0, 0.001, 0.002):
        wake_ups.at(moment + offset)
    await asyncio.sleep(0.1)

    assert len(wakes.times) == 1
    assert wakes.times[0] >= moment + 0.002


async def test_closing_forgets_the_wake_ups_to_come() -> None:
    wakes = Wakes()
    wake_ups = WakeUps(wakes)
    wake_ups.at(asyncio.get_running_loop().time() + 0.03)

    wake_ups.close()
    await asyncio.sleep(0.06)

    assert wakes.times == []
    assert wake_ups.pending == 0


async def test_a_failed_wake_up_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    wakes = Wakes(fail=True)
    wake_ups = WakeUps(wakes)

    with caplog.at_level(logging.WARNING, logger="app.delivery.pacing"):
        wake_ups.at(asyncio.get_running_loop().time())
        await asyncio.sleep(0.02)

    assert len(wakes.times) == 1
    assert "polling will find it" in caplog.text
    assert "the database is away" not in caplog.text
