"""Batches of events: up to :data:`MAX_BATCH_EVENTS` published in one call, each on its own.

The order system often has many events at once (after an outage of its own). One call
publishes them in order, each exactly as ``publish_event`` does (the same function), in a
savepoint of one transaction: a refused event undoes only itself, and the good ones
commit together in one commit. One commit for the batch is what makes it faster than
one call per event (README, "Performance"). The price: until that commit nothing of the
batch is stored, so a crash or a lost connection before it loses the whole batch's
events. The caller then sees an error instead of results, and retrying with the same
idempotency keys is safe: nothing of the failed call exists, and keys of an earlier
call still answer with their first events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.context import Context
from psycopg import errors as pg_errors

from app.core.errors import InvalidInput, UserError, UserErrorCode
from app.domain.events import Event, EventLimits, NewEvent, publish_in_span
from app.store.database import Database

MAX_BATCH_EVENTS = 100

# Two batches holding the same idempotency keys or subjects in different orders can
# deadlock (PostgreSQL ends one after deadlock_timeout); the loser starts over, as a
# caller's retry would, rather than answer an error for a conflict the caller cannot see.
_ATTEMPTS = 3


@dataclass(frozen=True)
class BatchOutcome:
    """One event of a batch: the event published (or first published with its key), or
    why it was refused (then nothing of it was written)."""

    event: Event | None
    errors: tuple[UserError, ...] = ()


def batch_errors(count: int) -> list[UserError]:
    """Why a batch of ``count`` events is refused as a whole, if it is."""
    if count <= MAX_BATCH_EVENTS:
        return []
    return [
        UserError(
            ("events",),
            f"At most {MAX_BATCH_EVENTS} events per call; this one has {count}.",
            UserErrorCode.TOO_LARGE,
        )
    ]


async def publish_events(
    db: Database, limits: EventLimits, batch: Sequence[NewEvent], caller: Context | None = None
) -> list[BatchOutcome]:
    """Publish each event of ``batch`` as ``publish_event`` does; outcomes in its order.

    A batch over :data:`MAX_BATCH_EVENTS` is refused whole (``InvalidInput``, nothing
    written). A refused event never stops the others; a duplicate idempotency key, within
    the batch or of an earlier call, answers with the first event as ``publish_event``
    does. Each event has a ``publishEvent`` span of its own, continuing ``caller``'s trace.
    """
    errors = batch_errors(len(batch))
    if errors:
        raise InvalidInput(errors)
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return await _publish_all(db, limits, batch, caller)
        except pg_errors.DeadlockDetected:
            if attempt == _ATTEMPTS:
                raise
    raise RuntimeError("unreachable: the last attempt returns or raises")


async def _publish_all(
    db: Database, limits: EventLimits, batch: Sequence[NewEvent], caller: Context | None
) -> list[BatchOutcome]:
    outcomes: list[BatchOutcome] = []
    async with db.transaction() as tx:
        for new in batch:
            try:
                event = await publish_in_span(db, limits, new, caller, within=tx)
            except InvalidInput as refused:
                outcomes.append(BatchOutcome(None, tuple(refused.errors)))
            else:
                outcomes.append(BatchOutcome(event))
    return outcomes
