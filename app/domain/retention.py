"""Retention: bounded growth without long locks.

After ``WEBHOOKS_RETENTION_DAYS`` the bulky parts of finished work go: the response
bodies and errors of succeeded deliveries' attempts, the delivered bytes of events whose
every delivery succeeded, and finished Procrastinate jobs. Each statement touches one
batch and commits, so no lock is held for long and the purge can stop at any point.
Failed deliveries keep everything: they may still be redelivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.store.database import Database

BATCH_SIZE = 1000
PURGES = ("purge_attempt_details", "purge_event_bodies", "purge_finished_jobs")


@dataclass(frozen=True)
class PurgeReport:
    attempts: int
    event_bodies: int
    jobs: int


async def purge_old_data(
    db: Database,
    retention_days: int,
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
) -> PurgeReport:
    """Purge what finished more than ``retention_days`` ago, in every company: the system's
    work (the worker's hourly job)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    counts: list[int] = []
    for query in PURGES:
        total = 0
        while True:
            async with db.transaction() as tx:
                done = await tx.execute(query, cutoff=cutoff, batch=batch_size)
            total += done
            if done < batch_size:
                break
        counts.append(total)
    return PurgeReport(*counts)
