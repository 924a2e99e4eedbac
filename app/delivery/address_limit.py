"""The per-address limit on failure emails: pure rules, no I/O.

A notification address is whatever a tenant typed, and never verified; failures are
whatever the tenant's endpoint makes them (``sendTestEvent`` to an endpoint answering
410 gets an email at once). Without a limit, a tenant could make the service mail any
address at will. So each address (compared case-insensitively, across all companies)
gets at most ``per_hour`` notices in any rolling hour and ``per_day`` in any rolling day.
A notice over the limit is not dropped: its failures stay unreported and the email job
waits until the address has room again, and whatever failed meanwhile is folded into
that one email. A failure therefore always reaches the subscriber, only later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class AddressLimit:
    """How many notices one address may get; 0 turns a bound off."""

    per_hour: int
    per_day: int


@dataclass(frozen=True)
class AddressUsage:
    """Notices opened for an address in the last hour and day, and when the oldest of
    each leaves its window (``None`` when there is none)."""

    last_hour: int
    last_day: int
    hour_frees_at: datetime | None
    day_frees_at: datetime | None


def next_opening(limit: AddressLimit, usage: AddressUsage) -> datetime | None:
    """``None`` when a notice may be opened now; else the moment the address has room."""
    waits: list[datetime] = []
    if limit.per_hour and usage.last_hour >= limit.per_hour and usage.hour_frees_at:
        waits.append(usage.hour_frees_at)
    if limit.per_day and usage.last_day >= limit.per_day and usage.day_frees_at:
        waits.append(usage.day_frees_at)
    return max(waits) if waits else None
