"""The retry rule: succeeded, failed for good, or retried one interval after the attempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.delivery.retry_rule import (
    FailedForGood,
    FailureReason,
    RetryAt,
    Step,
    Succeeded,
    next_step,
)

FINISHED = datetime(2026, 11, 28, 6, 0, 0, 250000, tzinfo=UTC)
INTERVAL = timedelta(seconds=360)
MAX = 10

# (succeeded, response status) as the transport reports them
OK = (True, 200)
ACCEPTED = (True, 204)
GONE = (False, 410)
SERVER_ERROR = (False, 500)
NOT_FOUND = (False, 404)
REDIRECT = (False, 301)
NO_RESPONSE = (False, None)


def step(
    outcome: tuple[bool, int | None],
    attempt: int,
    max_attempts: int = MAX,
    *,
    final: bool = False,
    finished_at: datetime = FINISHED,
    interval: timedelta = INTERVAL,
) -> Step:
    succeeded, status = outcome
    return next_step(
        succeeded=succeeded,
        response_status=status,
        attempt=attempt,
        max_attempts=max_attempts,
        finished_at=finished_at,
        interval=interval,
        final=final,
    )


@pytest.mark.parametrize(
    ("outcome", "attempt", "final", "expected"),
    [
        (OK, 1, False, Succeeded()),
        (ACCEPTED, 5, False, Succeeded()),
        (OK, MAX, False, Succeeded()),
        (OK, 3, True, Succeeded()),
        (GONE, 1, False, FailedForGood("gone")),
        (GONE, MAX - 1, False, FailedForGood("gone")),
        (GONE, MAX, False, FailedForGood("gone")),
        (GONE, 2, True, FailedForGood("gone")),
        (SERVER_ERROR, 1, False, RetryAt(FINISHED + INTERVAL)),
        (SERVER_ERROR, MAX - 1, False, RetryAt(FINISHED + INTERVAL)),
        (SERVER_ERROR, MAX, False, FailedForGood("last attempt")),
        (SERVER_ERROR, MAX + 1, False, FailedForGood("last attempt")),
        (SERVER_ERROR, 1, True, FailedForGood("given up")),
        (SERVER_ERROR, MAX, True, FailedForGood("given up")),
        (NOT_FOUND, 1, False, RetryAt(FINISHED + INTERVAL)),
        (REDIRECT, 1, False, RetryAt(FINISHED + INTERVAL)),
        (NO_RESPONSE, 1, False, RetryAt(FINISHED + INTERVAL)),
        (NO_RESPONSE, MAX, False, FailedForGood("last attempt")),
        (NO_RESPONSE, 4, True, FailedForGood("given up")),
    ],
    ids=[
        "2xx on the first attempt",
        "204 in between",
        "2xx on the last attempt",
        "2xx on an attempt given up on",
        "410 on the first attempt",
        "410 before the last attempt",
        "410 on the last attempt",
        "410 on an attempt given up on",
        "5xx on the first attempt",
        "5xx before the last attempt",
        "5xx on the last attempt",
        "5xx past the last attempt",
        "5xx given up on at once",
        "5xx given up on at the last attempt",
        "404 is retried",
        "a redirect is retried",
        "no response is retried",
        "no response on the last attempt",
        "no response given up on",
    ],
)
def test_the_outcome_and_the_attempts_left_decide_what_follows(
    outcome: tuple[bool, int | None], attempt: int, final: bool, expected: Step
) -> None:
    assert step(outcome, attempt, final=final) == expected


@pytest.mark.parametrize(
    "outcome", [SERVER_ERROR, NO_RESPONSE, GONE, OK], ids=["5xx", "no response", "410", "2xx"]
)
def test_with_a_single_attempt_allowed_nothing_is_retried(
    outcome: tuple[bool, int | None],
) -> None:
    assert not isinstance(step(outcome, 1, max_attempts=1), RetryAt)


@pytest.mark.parametrize("max_attempts", [1, 2, 3, 10, 100])
def test_a_delivery_that_always_fails_makes_exactly_its_attempts_one_interval_apart(
    max_attempts: int,
) -> None:
    finished_at, made = FINISHED, 0
    while True:
        made += 1
        following = step(SERVER_ERROR, made, max_attempts, finished_at=finished_at)
        if not isinstance(following, RetryAt):
            break
        assert following.moment == finished_at + INTERVAL
        # the next attempt finishes a little after it was due
        finished_at = following.moment + timedelta(milliseconds=40)

    assert made == max_attempts
    assert following == FailedForGood("last attempt")


@pytest.mark.parametrize(
    ("interval", "due"),
    [
        (timedelta(0), FINISHED),
        (timedelta(seconds=0.5), datetime(2026, 11, 28, 6, 0, 0, 750000, tzinfo=UTC)),
        (timedelta(seconds=360), datetime(2026, 11, 28, 6, 6, 0, 250000, tzinfo=UTC)),
        (timedelta(hours=18), datetime(2026, 11, 29, 0, 0, 0, 250000, tzinfo=UTC)),
        (timedelta(days=40), datetime(2027, 1, 7, 6, 0, 0, 250000, tzinfo=UTC)),
    ],
    ids=["no interval", "half a second", "six minutes", "past midnight", "past new year"],
)
def test_the_retry_is_due_one_interval_after_the_attempt_finished(
    interval: timedelta, due: datetime
) -> None:
    assert step(SERVER_ERROR, 1, interval=interval) == RetryAt(due)


def test_the_retry_time_keeps_the_finish_times_zone() -> None:
    finished = datetime(2026, 3, 29, 1, 59, tzinfo=timezone(timedelta(hours=1)))

    following = step(NO_RESPONSE, 1, finished_at=finished, interval=timedelta(minutes=2))

    assert following == RetryAt(datetime(2026, 3, 29, 2, 1, tzinfo=timezone(timedelta(hours=1))))
    assert isinstance(following, RetryAt) and following.moment.utcoffset() == timedelta(hours=1)


def test_each_step_names_the_status_it_leaves_the_delivery_in() -> None:
    assert Succeeded().status == "SUCCEEDED"
    assert FailedForGood("last attempt").status == "FAILED"
    assert RetryAt(FINISHED).status == "RETRYING"


@pytest.mark.parametrize(
    ("reason", "gone"), [("gone", True), ("last attempt", False), ("given up", False)]
)
def test_only_a_410_stops_the_subscription(reason: FailureReason, gone: bool) -> None:
    failed = step(GONE if gone else SERVER_ERROR, MAX, final=reason == "given up")

    assert failed == FailedForGood(reason)
    assert isinstance(failed, FailedForGood) and failed.gone is gone
