"""Arrival times at a receiver, counted as the delivery rate is promised: per any one-second
window, not per calendar second."""

from __future__ import annotations

import bisect
from collections.abc import Iterable


def busiest_second(moments: Iterable[float]) -> int:
    """The most of ``moments`` (seconds) that any half-open one-second window [t, t + 1)
    holds. The busiest window can always be slid to start at one of them."""
    ordered = sorted(moments)
    return max(
        (bisect.bisect_left(ordered, start + 1.0) - index for index, start in enumerate(ordered)),
        default=0,
    )
