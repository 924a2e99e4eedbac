"""The delivery job's arguments: one shape (``AttemptJob``) for every defer, the task that
reads them back and the fan-out statement that builds them in SQL."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from app.store.database import Session
from app.store.queries import QUERIES
from app.store.queue import AttemptJob, FanOutMismatch, fan_out_event

DELIVERY = uuid.UUID("0b7e3a4c-5d6f-4a1b-9c2d-3e4f5a6b7c8d")


@pytest.mark.parametrize(
    "job",
    [
        AttemptJob(DELIVERY, 1, 1),
        AttemptJob(DELIVERY, 3, 7, postponed=2),
        AttemptJob(DELIVERY, 1, 2, slot=datetime(2026, 12, 1, 9, 0, 0, 20589, tzinfo=UTC)),
        AttemptJob(DELIVERY, 1, 1, slot=datetime(2026, 12, 1, 9, 0, tzinfo=UTC), missed=1),
    ],
    ids=["first-attempt", "postponed-retry", "paced-retry", "paced-after-a-missed-slot"],
)
def test_an_attempt_job_round_trips_through_its_task_kwargs(job: AttemptJob) -> None:
    # Given an attempt's job arguments, stored as Procrastinate stores them (JSON)
    stored = json.loads(json.dumps(job.as_task_kwargs()))

    # When the delivery task reads them back
    # Then it gets the same attempt
    assert AttemptJob.from_task_kwargs(stored) == job


def test_an_attempt_never_put_off_carries_no_postponed_argument() -> None:
    assert AttemptJob(DELIVERY, 2, 5).as_task_kwargs() == {
        "delivery_id": str(DELIVERY),
        "cycle": 2,
        "attempt": 5,
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"delivery_id": str(DELIVERY), "cycle": 1, "attempt": 1, "extra": 1},
        {"delivery_id": str(DELIVERY), "cycle": "1", "attempt": 1},
        {"delivery_id": str(DELIVERY), "cycle": 1},
        {"delivery_id": str(DELIVERY), "cycle": 1, "attempt": 1, "slot": 1764579600.0},
        {"delivery_id": str(DELIVERY), "cycle": 1, "attempt": 1, "missed": "1"},
    ],
    ids=["unknown-key", "wrong-type", "missing-key", "slot-not-a-time", "missed-not-a-count"],
)
def test_arguments_of_another_shape_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises((TypeError, KeyError)):
        AttemptJob.from_task_kwargs(kwargs)


def test_the_fan_out_builds_the_arguments_of_a_first_attempt() -> None:
    # Given the keys the fan-out statement writes into each job's arguments
    built = re.search(r"jsonb_build_object\((.*?)\)\s*, NULL", QUERIES["fan_out_event"], re.S)
    assert built is not None
    keys = re.findall(r"'([a-z_]+)'", built.group(1))

    # Then they are those of a first attempt's job, in its order, attempt 1 included
    assert keys == list(AttemptJob(DELIVERY, 1, 1).as_task_kwargs())
    assert re.search(r"'attempt', 1\)", built.group(0))


class CountsSession:
    """A transaction whose fan-out statement answers with the given counts."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    async def fetch_one(self, query: str, **arguments: Any) -> dict[str, int]:
        assert query == "fan_out_event"
        return self.counts


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({"deliveries": 3, "held": 0, "jobs": 2}, r"queued 2 jobs for 3 deliveries$"),
        # A HELD delivery (ordered per subject) has no job until the one before it ends.
        ({"deliveries": 3, "held": 1, "jobs": 3}, r"queued 3 jobs for 3 deliveries \(1 held\)"),
    ],
    ids=["fewer-jobs", "a-job-for-a-held-delivery"],
)
async def test_a_fan_out_queuing_other_than_one_job_per_delivery_sent_raises(
    counts: dict[str, int], message: str
) -> None:
    # Given a fan-out whose jobs are not one per delivery that is not held
    tx = cast(Session, CountsSession(counts))

    # When it is run, then it raises (rolling the caller's transaction back)
    with pytest.raises(FanOutMismatch, match=message):
        await fan_out_event(
            tx,
            event_id=DELIVERY,
            company_id="company",
            webhook_key="ORDER_STATUS",
            subject=None,
            max_attempts=10,
            subscription_id=None,
        )
