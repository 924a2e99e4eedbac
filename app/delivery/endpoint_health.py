"""Endpoint health: stop sending to endpoints that only fail.

A subscription whose deliveries have all failed for ``WEBHOOKS_DISABLE_AFTER_FAILING_SECONDS``
(default five days, the span Svix uses: long enough to survive a weekend outage, short
enough not to hammer a dead endpoint for weeks) is deactivated, its open deliveries are
cancelled, its notification email says so, and SUBSCRIPTION_DEACTIVATED (reason FAILING)
is emitted in the same transaction (app/delivery/operator_events.py). (A ``410 Gone``
answer deactivates at once; see app/delivery/attempts.py.) Reactivate with
``updateWebhookSubscription(isActive: true)``.
"""

from __future__ import annotations

import logging

from app.delivery.failure_email import REACTIVATE
from app.delivery.operator_events import report_failing
from app.store.queue import cancel_open_deliveries, defer_notice
from app.store.services import Services

logger = logging.getLogger(__name__)


def reason_text(period_seconds: float) -> str:
    days = period_seconds / 86400
    span = f"{days:g} days" if days >= 1 else f"{period_seconds:g} seconds"
    return (
        f"every delivery has failed for {span}, so the subscription was deactivated; {REACTIVATE}"
    )


async def deactivate_failing_subscriptions(services: Services) -> int:
    """Deactivate what has only failed for the period; returns how many were deactivated."""
    period = services.settings.disable_after_failing_seconds
    if period <= 0:
        return 0
    reason = reason_text(period)
    count = 0
    for row in await services.db.fetch_all("failing_subscriptions", period_seconds=period):
        async with services.db.transaction() as tx:
            changed = await tx.fetch_one("deactivate_subscription", id=row["id"], reason=reason)
            if changed is None:
                continue  # deactivated or deleted meanwhile
            await cancel_open_deliveries(tx, row["id"])
            await defer_notice(services.queue, tx, row["id"], delay_seconds=0, reason=reason)
            await report_failing(tx, changed, max_attempts=services.settings.max_attempts)
        count += 1
        logger.warning(
            "deactivated a failing subscription",
            extra={"subscription_id": str(row["id"]), "company_id": row["company_id"]},
        )
    return count
