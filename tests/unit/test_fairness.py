"""Fairness: the per-subscription cap, and how long an attempt over it is put off."""

from __future__ import annotations

import random
import uuid

import pytest

from app.fairness import InFlight, default_cap, postponement_seconds


def test_a_subscription_gets_at_most_cap_slots_and_gets_them_back() -> None:
    in_flight = InFlight(cap=2)
    busy, other = uuid.uuid4(), uuid.uuid4()

    taken = [in_flight.try_acquire(busy) for _ in range(3)]
    assert taken == [True, True, False]
    assert in_flight.try_acquire(other)

    in_flight.release(busy)
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
