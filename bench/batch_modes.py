"""How a batch of events is best made atomic per event: savepoints in one transaction
(what ``publishEvents`` does) against one transaction per event, measured in turns.

Both call ``publish_event``, the publisher's scope bound as the API binds it, on the
driver's services (no HTTP, no GraphQL): only the transactions differ. No worker runs on
the database meanwhile; the jobs stay queued.
"""

from __future__ import annotations

import time
from typing import Any

from app.domain.event_batches import publish_events
from app.domain.events import EventLimits, NewEvent, publish_event
from app.store.database import PUBLISHER_SCOPE, scoped
from app.store.services import Services
from bench.stats import rate
from bench.tenants import PAYLOAD, WEBHOOK, create_company, subscribe

ROUNDS = 5
BATCH = 100


async def compare(services: Services, receiver_url: str, rounds: int = ROUNDS) -> dict[str, Any]:
    """Events/s of each way, over ``rounds`` batches of 100 each, alternating."""
    company_id = await create_company(services, "batch-modes")
    await subscribe(services, company_id, [receiver_url])
    limits = EventLimits.of(services.settings)
    seconds = {"savepoints": 0.0, "transaction_per_event": 0.0}
    with scoped(PUBLISHER_SCOPE):
        for round_number in range(rounds):
            for mode in seconds:
                batch = [
                    NewEvent(company_id, WEBHOOK, PAYLOAD, subject=f"{mode}-{round_number}-{i}")
                    for i in range(BATCH)
                ]
                started = time.perf_counter()
                if mode == "savepoints":
                    await publish_events(services.db, limits, batch)
                else:
                    for new in batch:
                        await publish_event(services.db, limits, new)
                seconds[mode] += time.perf_counter() - started
    events = rounds * BATCH
    per_second = {mode: rate(events, spent) for mode, spent in seconds.items()}
    return {
        "events_per_mode": events,
        "events_per_second": per_second,
        "savepoints_speedup": round(
            per_second["savepoints"] / per_second["transaction_per_event"], 2
        )
        if per_second["transaction_per_event"]
        else None,
    }
