"""The per-address limit on failure emails: when the next notice to an address may go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from app.delivery.address_limit import AddressLimit, AddressUsage, next_opening
from app.delivery.notices import MAX_POSTPONE_SECONDS, postpone_delay

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
HOUR_FREES = NOW + timedelta(minutes=20)
DAY_FREES = NOW + timedelta(hours=5)
LIMIT = AddressLimit(per_hour=10, per_day=40)


def usage(last_hour: int, last_day: int) -> AddressUsage:
    return AddressUsage(last_hour, last_day, HOUR_FREES, DAY_FREES)


def test_an_address_under_both_bounds_is_mailed_now() -> None:
    assert next_opening(LIMIT, usage(9, 39)) is None


def test_an_address_at_its_hourly_bound_waits_for_the_oldest_of_the_hour_to_leave() -> None:
    assert next_opening(LIMIT, usage(10, 12)) == HOUR_FREES


def test_an_address_at_its_daily_bound_waits_for_the_oldest_of_the_day_to_leave() -> None:
    assert next_opening(LIMIT, usage(3, 40)) == DAY_FREES


def test_an_address_at_both_bounds_waits_for_the_later_one() -> None:
    assert next_opening(LIMIT, usage(10, 40)) == DAY_FREES


def test_zero_turns_a_bound_off() -> None:
    assert next_opening(AddressLimit(per_hour=0, per_day=0), usage(500, 5000)) is None
    assert next_opening(AddressLimit(per_hour=0, per_day=40), usage(500, 40)) == DAY_FREES


def test_a_job_without_an_email_slot_comes_back_later_each_time_up_to_a_bound() -> None:
    delays = [postpone_delay(n) for n in range(12)]

    # 1 s, then twice as long each time (with 10 % jitter) until the bound is reached
    doubling = [delay for delay in delays if delay < MAX_POSTPONE_SECONDS * 0.9]
    assert 0.9 <= delays[0] <= 1.1
    assert len(doubling) >= 2
    assert all(later > earlier for earlier, later in pairwise(doubling))
    assert delays[: len(doubling)] == doubling
    assert max(delays) <= MAX_POSTPONE_SECONDS * 1.1
    assert min(delays[len(doubling) + 1 :]) >= MAX_POSTPONE_SECONDS * 0.9
