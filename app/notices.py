"""Failure notices: the email that tells a subscriber its deliveries failed for good.

A FAILED delivery is queued as a report in the same transaction that fails it, with an
email job for its subscription scheduled at the end of the grouping window
(``WEBHOOKS_EMAIL_WINDOW_SECONDS``; one waiting job per subscription, so failures inside
the window share one email). The job claims the reports into a notice, sends it and
marks it sent. A failed send keeps the notice and retries later with backoff, so no
failure goes unreported; the notice's Message-ID is stable, so the rare resend after a
crash between SMTP's "250 OK" and our commit is recognisable as the same email.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from procrastinate.exceptions import AlreadyEnqueued

from app import metrics
from app.database import Row, Session
from app.failure_email import AttemptLine, FailedDelivery, FailureNotice, render_failure_email
from app.mailer import MailDeliveryError, Mailer
from app.masking import with_masked_params
from app.queue import NOTICE_QUEUE, NOTIFY_TASK
from app.services import Services

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 600.0


def notice_lock(subscription_id: uuid.UUID | str, *, with_reason: bool = False) -> str:
    """The queueing lock of a subscription's email job.

    An email saying why delivery stopped (410 Gone) has a lock of its own: behind the
    job waiting out the grouping window it would be late, and its reason lost.
    """
    return f"notice:{subscription_id}" + (":reason" if with_reason else "")


async def queue_failure_report(
    services: Services, tx: Session, delivery: Row, cycle: int, *, reason: str | None = None
) -> None:
    """Inside ``tx``: record a failed delivery and make sure an email job will report it."""
    await tx.execute(
        "report_failed_delivery",
        delivery_id=delivery["id"],
        cycle=cycle,
        subscription_id=delivery["subscription_id"],
        company_id=delivery["company_id"],
    )
    window = 0.0 if reason else services.settings.email_window_seconds
    await schedule_notice_job(
        services, tx, delivery["subscription_id"], delay_seconds=window, reason=reason
    )


async def schedule_notice_job(
    services: Services,
    tx: Session | None,
    subscription_id: uuid.UUID | str,
    *,
    delay_seconds: float,
    reason: str | None = None,
) -> None:
    """Queue the email job of a subscription unless one is already waiting.

    The queueing lock allows one waiting job per subscription (and one more with a
    reason); when one waits, it will pick this report up too. The insert runs in a
    savepoint so that refusal does not abort the caller's transaction.
    """
    deferrer = services.queue.configure_task(
        NOTIFY_TASK,
        queue=NOTICE_QUEUE,
        queueing_lock=notice_lock(subscription_id, with_reason=reason is not None),
        schedule_at=datetime.now(UTC) + timedelta(seconds=delay_seconds),
        connection=tx.connection if tx else None,
    )
    try:
        if tx is None:
            await deferrer.defer_async(subscription_id=str(subscription_id), reason=reason)
            return
        async with tx.connection.transaction():
            await deferrer.defer_async(subscription_id=str(subscription_id), reason=reason)
    except AlreadyEnqueued:
        pass


async def send_notices(
    services: Services, mailer: Mailer, subscription_id: str, reason: str | None = None
) -> int:
    """Claim a subscription's unreported failures into a notice and send every unsent one.

    Returns the number of emails sent. A send failure leaves the notice unsent and
    re-queues this job with backoff.
    """
    key = uuid.UUID(subscription_id)
    async with services.db.transaction() as tx:
        notice = await tx.fetch_one("insert_failure_notice", subscription_id=key, reason=reason)
        if notice is not None:
            claimed = await tx.fetch_all(
                "claim_pending_reports", notice_id=notice["id"], subscription_id=key
            )
            if not claimed and reason is None:
                await tx.execute("delete_empty_notice", id=notice["id"])
    sent = 0
    async with services.db.transaction() as tx:
        for pending in await tx.fetch_all("unsent_notices", subscription_id=key):
            message = await _render(services, tx, pending)
            if message is None:
                await tx.execute("mark_notice_sent", id=pending["id"])
                continue
            try:
                await mailer.send(message)
            except MailDeliveryError as error:
                metrics.EMAILS.labels("failed").inc()
                attempts = await tx.fetch_one(
                    "mark_notice_failed", id=pending["id"], error=str(error)
                )
                count = attempts["send_attempts"] if attempts else 1
                delay = min(MAX_BACKOFF_SECONDS, 5.0 * 2 ** (count - 1))
                logger.warning(
                    "failure email not sent (%s); retrying in %.0f s",
                    error,
                    delay,
                    extra={"subscription_id": subscription_id},
                )
                # Committed with this transaction: the retry job exists iff the
                # failure is recorded.
                await schedule_notice_job(services, tx, key, delay_seconds=delay)
                return sent
            await tx.execute("mark_notice_sent", id=pending["id"])
            metrics.EMAILS.labels("sent").inc()
            sent += 1
            logger.info("failure email sent", extra={"subscription_id": subscription_id})
    return sent


async def _render(services: Services, tx: Session, notice: Row) -> EmailMessage | None:
    subscription = await tx.fetch_one("notice_subscription", id=notice["subscription_id"])
    deliveries = await tx.fetch_all("notice_deliveries", notice_id=notice["id"])
    if not deliveries and notice["reason"]:
        # A deactivation notice: show the latest failures as context.
        deliveries = await tx.fetch_all(
            "recent_failed_deliveries", subscription_id=notice["subscription_id"]
        )
    if subscription is None or not deliveries:
        return None
    attempts = await tx.fetch_all(
        "attempts_of_deliveries", delivery_ids=[row["id"] for row in deliveries]
    )
    by_delivery: dict[tuple[uuid.UUID, int], list[AttemptLine]] = {}
    for attempt in attempts:
        by_delivery.setdefault((attempt["delivery_id"], attempt["cycle"]), []).append(
            AttemptLine(
                number=attempt["number"],
                started_at=attempt["started_at"],
                response_status=attempt["response_status"],
                error=attempt["error"],
            )
        )
    secret_names = [param["name"] for param in subscription["api_key_params"]]
    return render_failure_email(
        FailureNotice(
            to=subscription["notification_email"],
            sender=services.settings.email_from,
            subscription_id=str(subscription["id"]),
            webhook_key=subscription["webhook_key"],
            webhook_name=subscription["webhook_name"],
            callback_url_masked=with_masked_params(subscription["callback_url"], secret_names),
            deliveries=[
                FailedDelivery(
                    delivery_id=str(row["id"]),
                    webhook_id=row["webhook_id"],
                    event_id=str(row["event_id"]),
                    subject=row["subject"],
                    attempts=by_delivery.get((row["id"], row["cycle"]), []),
                )
                for row in deliveries
            ],
            reason=notice["reason"],
        )
    )
