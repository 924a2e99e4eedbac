"""Redelivery: a fresh cycle of attempts for finished deliveries, same webhook-id and body."""

from __future__ import annotations

import uuid
from datetime import datetime

import procrastinate

from app.core.errors import InvalidInput, UserError, UserErrorCode, not_found
from app.core.ids import try_uuid
from app.core.viewer import Viewer
from app.domain.deliveries import Delivery, delivery_from_row
from app.domain.subscriptions import require_active_subscription
from app.store.database import Database, Row
from app.store.queue import AttemptJob, defer_attempts

BATCH_SIZE = 500


async def redeliver(
    db: Database, queue: procrastinate.App, viewer: Viewer, delivery_id: str
) -> Delivery:
    """Restart one finished delivery of the viewer's company; refuses one still in progress."""
    company_id = viewer.own_company
    key = try_uuid(delivery_id)
    if key is None:
        raise not_found(("delivery_id",), "delivery")
    async with db.transaction() as tx:
        current = await tx.fetch_one("get_delivery", id=key, company_id=company_id)
        if current is None:
            raise not_found(("delivery_id",), "delivery")
        restarted = await tx.fetch_one("restart_delivery", id=key, company_id=company_id)
        if restarted is None:
            raise InvalidInput([_refusal(current["status"])])
        await defer_attempts(queue, tx, [AttemptJob(key, restarted["cycle"], 1)])
        row = await tx.fetch_one("get_delivery", id=key, company_id=company_id)
    if row is None:
        raise RuntimeError(f"delivery {key} vanished inside the transaction that restarted it")
    return delivery_from_row(row)


def _refusal(status: str) -> UserError:
    if status in ("PENDING", "RETRYING"):
        message = "The delivery is still in progress; wait until it succeeds or fails."
    elif status == "HELD":
        message = (
            "The delivery waits for an earlier one of its subject (see waitingFor); "
            "it will be sent once that one ends."
        )
    else:
        message = "The delivery's subscription is deleted or inactive; nothing can be sent."
    return UserError(("delivery_id",), message, UserErrorCode.INVALID)


async def redeliver_failed(
    db: Database,
    queue: procrastinate.App,
    viewer: Viewer,
    subscription_id: str | None,
    since: datetime,
) -> int:
    """Restart every FAILED delivery created at or after ``since`` of a subscription, or
    (``subscription_id`` None) of every subscription of the viewer's company.

    One subscription must be live and active (a userError says why not); across all of
    them, the deliveries of a deleted or inactive one are left as they are (nothing can be
    sent to it), as are those whose body retention dropped. Works in batches, each its own
    transaction, so a large backlog never holds long locks.
    """
    company_id = viewer.own_company
    key: uuid.UUID | None = None
    if subscription_id is not None:
        subscription = await require_active_subscription(
            db, viewer, subscription_id, to="redeliver"
        )
        key = subscription["id"]
    count = 0
    after: Row | None = None
    while True:
        async with db.transaction() as tx:
            batch = await tx.fetch_all(
                "failed_deliveries_since",
                subscription_id=key,
                company_id=company_id,
                since=since,
                after_id=None if after is None else after["id"],
                after_created_at=None if after is None else after["created_at"],
                limit=BATCH_SIZE,
            )
            restarted: list[AttemptJob] = []
            for row in batch:
                result = await tx.fetch_one("restart_delivery", id=row["id"], company_id=company_id)
                if result is not None:
                    restarted.append(AttemptJob(row["id"], result["cycle"], 1))
            await defer_attempts(queue, tx, restarted)
        count += len(restarted)
        if len(batch) < BATCH_SIZE:
            return count
        after = batch[-1]
