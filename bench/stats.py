"""Small statistics for the benchmark: percentiles and rates."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` percentile (0..1) by linear interpolation; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float | int]:
    """Count, p50, p95, p99, max and mean of durations given in seconds, in milliseconds."""
    milliseconds = [value * 1000 for value in seconds]
    return {
        "count": len(milliseconds),
        "p50_ms": round(percentile(milliseconds, 0.50), 2),
        "p95_ms": round(percentile(milliseconds, 0.95), 2),
        "p99_ms": round(percentile(milliseconds, 0.99), 2),
        "max_ms": round(max(milliseconds), 2) if milliseconds else math.nan,
        "mean_ms": round(sum(milliseconds) / len(milliseconds), 2) if milliseconds else math.nan,
    }


def rate(count: int, seconds: float) -> float:
    """Items per second, rounded; 0 when no time passed."""
    return round(count / seconds, 1) if seconds > 0 else 0.0
