"""The retry rule: what one attempt's outcome makes of its delivery.

A success ends the delivery. A failure ends it for good after its last attempt, when the
endpoint answered ``410 Gone`` (Standard Webhooks: gone for good, whatever the attempt's
number) or when the attempt was given up on; any other failure is retried one interval
after the attempt finished. Pure: the caller reads the clock and records the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar, Literal

from app.core.delivery_status import DeliveryStatus

GONE_STATUS = 410

FailureReason = Literal["gone", "given up", "last attempt"]


@dataclass(frozen=True)
class Succeeded:
    """The endpoint accepted the delivery: nothing follows."""

    status: ClassVar[DeliveryStatus] = DeliveryStatus.SUCCEEDED


@dataclass(frozen=True)
class FailedForGood:
    """No attempt follows; ``reason`` says why (``gone``: the subscription must stop)."""

    reason: FailureReason
    status: ClassVar[DeliveryStatus] = DeliveryStatus.FAILED

    @property
    def gone(self) -> bool:
        return self.reason == "gone"


@dataclass(frozen=True)
class RetryAt:
    """The next attempt is due at ``moment``."""

    moment: datetime
    status: ClassVar[DeliveryStatus] = DeliveryStatus.RETRYING


Step = Succeeded | FailedForGood | RetryAt


def next_step(
    *,
    succeeded: bool,
    response_status: int | None,
    attempt: int,
    max_attempts: int,
    finished_at: datetime,
    interval: timedelta,
    final: bool = False,
) -> Step:
    """What follows attempt number ``attempt`` (from 1) of at most ``max_attempts``.

    ``succeeded`` and ``response_status`` are the attempt's outcome (no status: no complete
    response arrived). ``final`` makes a failed attempt the last one, whatever its number.
    A 410 is named as the reason even on the last attempt or a final one: it is the
    reason that deactivates the subscription.
    """
    if succeeded:
        return Succeeded()
    if response_status == GONE_STATUS:
        return FailedForGood("gone")
    if final:
        return FailedForGood("given up")
    if attempt >= max_attempts:
        return FailedForGood("last attempt")
    return RetryAt(finished_at + interval)
