"""Retention: bounded growth without long locks.

After ``WEBHOOKS_RETENTION_DAYS`` the bulky parts of finished work go: the response
bodies and errors of succeeded deliveries' attempts, the delivered bytes of events whose
every delivery succeeded, and finished Procrastinate jobs. Each statement touches one
batch and commits, so no lock is held for long and the purge can stop at any point.
Failed deliveries keep everything: they may still be redelivered. Portal links and
sessions go as soon as they expire (they open nothing any more), whatever the retention.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.store.database import Database, Session
from app.store.queue import purge_finished_jobs

BATCH_SIZE = 1000

# One batch of one purge inside a transaction: (tx, cutoff, batch size) -> rows purged.
Purge = Callable[[Session, datetime, int], Awaitable[int]]


def _statement(query: str) -> Purge:
    async def purge(tx: Session, cutoff: datetime, batch: int) -> int:
        return await tx.execute(query, cutoff=cutoff, batch=batch)

    return purge


PURGES: tuple[Purge, ...] = (
    _statement("purge_attempt_details"),
    _statement("purge_event_bodies"),
    purge_finished_jobs,
    _statement("purge_portal_links"),
    _statement("purge_portal_sessions"),
)


@dataclass(frozen=True)
class PurgeReport:
    attempts: int
    event_bodies: int
    jobs: int
    portal_links: int
    portal_sessions: int


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
    for purge in PURGES:
        total = 0
        while True:
            async with db.transaction() as tx:
                done = await purge(tx, cutoff, batch_size)
            total += done
            if done < batch_size:
                break
        counts.append(total)
    return PurgeReport(*counts)
