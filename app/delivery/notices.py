"""Failure notices: the email that tells a subscriber its deliveries failed for good.

A FAILED delivery is queued as a report in the same transaction that fails it, with an
email job for its subscription scheduled at the end of the grouping window
(``WEBHOOKS_EMAIL_WINDOW_SECONDS``; one waiting job per subscription, so failures inside
the window share one email). The job claims the reports into a notice, sends it and
marks it sent. A failed send keeps the notice and retries later with backoff, so no
failure goes unreported; the notice's Message-ID is stable, so the rare resend after a
crash between SMTP's "250 OK" and our commit is recognisable as the same email.

Claim, commit, send, record: no transaction and no pooled connection is held while the
mail server talks, however slowly. Each notice is leased for the send (a crashed sender's
lease runs out and the notice is taken again), the conversation is bounded by
``WEBHOOKS_SMTP_TIMEOUT_SECONDS``, and a worker runs at most
``WEBHOOKS_EMAIL_CONCURRENCY`` email jobs at once: one more puts itself off instead of
taking a slot that a delivery needs. Each address gets a bounded number of notices
(app/delivery/address_limit.py); over it, the job waits and the failures fold into the next email.

The email shows each delivery's payload (app/delivery/email_payload.py), read from the
event's delivered body when the notice is rendered, with the subscription's secret
values masked; they are decrypted for that only, and never leave this module but as a
:class:`Redactor`.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from app.core.masking import Redactor, with_masked_params
from app.core.secret_box import SecretBoxError, header_context, param_context, secret_context
from app.delivery import metrics
from app.delivery.address_limit import AddressLimit, AddressUsage, next_opening
from app.delivery.email_payload import (
    EMAIL_PAYLOAD_CAP_BYTES,
    PayloadText,
    render_payload,
    values_to_redact,
)
from app.delivery.failure_email import (
    AttemptLine,
    FailedDelivery,
    FailureNotice,
    render_failure_email,
)
from app.delivery.fairness import postponement_seconds
from app.delivery.mailer import MailDeliveryError, Mailer
from app.delivery.outgoing import OutgoingDelivery
from app.store.database import Row, Session
from app.store.queue import defer_notice
from app.store.services import Services

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 600.0
# A lease outlives the longest conversation the mailer allows by this much.
LEASE_MARGIN_SECONDS = 60.0
# How soon a job that found another sender's lease looks again.
LEASE_RECHECK_SECONDS = 2.0
# An email job over its worker's email concurrency comes back after 1 s, then twice as
# long each time, up to this (with jitter). Short: a slot is usually free again within
# milliseconds, and a burst of failure emails must drain in seconds, not in the minutes
# that doubling to half a minute took; a slow SMTP server costs one re-queue per waiting
# email every few seconds.
MAX_POSTPONE_SECONDS = 4.0
# Events whose payloads one query reads for an email: the page is read whole, so this
# bounds what is read past the email's payload budget.
PAYLOAD_PAGE = 16


class EmailSlots:
    """How many email jobs a worker runs at once; taken without waiting.

    A job that waited for a slot would keep one of the worker's Procrastinate slots the
    whole time, which is what must not happen: the job puts itself off instead.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._taken = 0

    def try_take(self) -> bool:
        if self._taken >= self._limit:
            return False
        self._taken += 1
        return True

    def give_back(self) -> None:
        self._taken -= 1

    @property
    def taken(self) -> int:
        return self._taken


@dataclass(frozen=True)
class NoticeRun:
    """What one email job did."""

    sent: int = 0
    postponed_until: datetime | None = None


def postpone_delay(postponed: int) -> float:
    """Seconds before a job that found no free email slot tries again (the n-th time):
    the back-off of postponed delivery attempts, with its own bound."""
    return postponement_seconds(postponed, MAX_POSTPONE_SECONDS)


async def queue_failure_report(
    services: Services,
    tx: Session,
    delivery: OutgoingDelivery,
    cycle: int,
    *,
    reason: str | None = None,
) -> None:
    """Inside ``tx``: record a failed delivery and make sure an email job will report it."""
    subscription_id = delivery.endpoint.subscription_id
    await tx.execute(
        "report_failed_delivery",
        delivery_id=delivery.id,
        cycle=cycle,
        subscription_id=subscription_id,
        company_id=delivery.company_id,
    )
    window = 0.0 if reason else services.settings.email_window_seconds
    await defer_notice(services.queue, tx, subscription_id, delay_seconds=window, reason=reason)


async def run_notice_job(
    services: Services,
    mailer: Mailer,
    slots: EmailSlots,
    subscription_id: str,
    reason: str | None = None,
    postponed: int = 0,
) -> NoticeRun:
    """The email job: send a subscription's notices if this worker has an email slot
    free, else put the job off (it never waits holding a worker slot)."""
    if not slots.try_take():
        delay = postpone_delay(postponed)
        await defer_notice(
            services.queue,
            None,
            subscription_id,
            delay_seconds=delay,
            reason=reason,
            postponed=postponed + 1,
        )
        metrics.EMAILS.labels("postponed").inc()
        return NoticeRun(postponed_until=datetime.now(UTC) + timedelta(seconds=delay))
    try:
        return await send_notices(services, mailer, subscription_id, reason)
    finally:
        slots.give_back()


async def send_notices(
    services: Services, mailer: Mailer, subscription_id: str, reason: str | None = None
) -> NoticeRun:
    """Claim a subscription's unreported failures into a notice and send every unsent one.

    A send failure leaves the notice unsent and re-queues this job with backoff; an
    address over its limit leaves the failures unclaimed and re-queues it for when the
    address has room.
    """
    key = uuid.UUID(subscription_id)
    settings = services.settings
    limit = AddressLimit(settings.email_address_per_hour, settings.email_address_per_day)
    held_for: timedelta | None = None
    async with services.db.transaction() as tx:
        # A job with no reason and no unreported failure is a retry of an unsent notice:
        # nothing new to open.
        if reason is not None or await tx.fetch_one("pending_reports", subscription_id=key):
            held_for = await _address_wait(tx, key, limit)
            if held_for is None:
                await _open_notice(tx, key, reason)
            else:
                # Committed with this transaction's view of the address: the failures
                # stay unreported until then, and that email reports all of them.
                await defer_notice(
                    services.queue, tx, key, delay_seconds=held_for.total_seconds(), reason=reason
                )
    held_until = None if held_for is None else datetime.now(UTC) + held_for
    if held_until is not None:
        metrics.EMAILS.labels("held").inc()
        logger.warning(
            "failure email held until %s: its address reached the per-address limit",
            held_until.isoformat(timespec="seconds"),
            extra={"subscription_id": subscription_id},
        )
    sent = 0
    lease_seconds = settings.smtp_timeout_seconds + LEASE_MARGIN_SECONDS
    while True:
        # 1. claim: lease one notice and render it, in a short transaction
        async with services.db.transaction() as tx:
            pending = await tx.fetch_one(
                "lease_unsent_notice", subscription_id=key, lease_seconds=lease_seconds
            )
            if pending is None:
                break
            message = await _render(services, tx, pending)
            if message is None:
                await tx.execute("mark_notice_sent", id=pending["id"])
                continue
        # 2. send, with no connection held
        try:
            await mailer.send(message)
        except MailDeliveryError as error:
            # 3a. record the failure and the retry in one short transaction: the retry
            # job exists iff the failure is recorded
            metrics.EMAILS.labels("failed").inc()
            async with services.db.transaction() as tx:
                attempts = await tx.fetch_one(
                    "mark_notice_failed", id=pending["id"], error=str(error)
                )
                count = attempts["send_attempts"] if attempts else 1
                delay = min(MAX_BACKOFF_SECONDS, 5.0 * 2 ** (count - 1))
                await defer_notice(services.queue, tx, key, delay_seconds=delay)
            logger.warning(
                "failure email not sent (%s); retrying in %.0f s",
                error,
                delay,
                extra={"subscription_id": subscription_id},
            )
            return NoticeRun(sent=sent, postponed_until=held_until)
        # 3b. record the success
        await services.db.execute("mark_notice_sent", id=pending["id"])
        metrics.EMAILS.labels("sent").inc()
        sent += 1
        logger.info("failure email sent", extra={"subscription_id": subscription_id})
    # Notices another sender holds: if that sender died, they must still go out, so come
    # back to look, every few seconds until its lease ends, not only at the lease's end
    # (a minute and more away): a live sender is usually done within milliseconds, and
    # a job waiting for nothing would hold up everything that waits for the queue to
    # drain.
    leased = await services.db.fetch_one("next_lease_end", subscription_id=key)
    if leased is not None and leased["seconds_left"] is not None:
        delay = min(float(leased["seconds_left"]) + 1.0, LEASE_RECHECK_SECONDS)
        await defer_notice(services.queue, None, key, delay_seconds=delay)
    return NoticeRun(sent=sent, postponed_until=held_until)


async def _open_notice(tx: Session, subscription_id: uuid.UUID, reason: str | None) -> None:
    notice = await tx.fetch_one(
        "insert_failure_notice", subscription_id=subscription_id, reason=reason
    )
    if notice is None:
        return
    claimed = await tx.fetch_all(
        "claim_pending_reports", notice_id=notice["id"], subscription_id=subscription_id
    )
    if not claimed and reason is None:
        await tx.execute("delete_empty_notice", id=notice["id"])


async def _address_wait(
    tx: Session, subscription_id: uuid.UUID, limit: AddressLimit
) -> timedelta | None:
    """How long until the subscription's address has room for one more notice (None:
    it has room now). Holds the address's lock until ``tx`` ends."""
    if not limit.per_hour and not limit.per_day:
        return None
    row = await tx.fetch_one("notification_address", subscription_id=subscription_id)
    if row is None:
        return None
    address = row["notification_email"]
    await tx.fetch_one("lock_address", address=address)
    usage = await tx.fetch_one("address_usage", address=address)
    if usage is None:
        raise RuntimeError("address_usage returned no row (it always returns one)")
    opening = next_opening(
        limit,
        AddressUsage(
            last_hour=usage["last_hour"],
            last_day=usage["last_day"],
            hour_frees_at=usage["hour_frees_at"],
            day_frees_at=usage["day_frees_at"],
        ),
    )
    if opening is None:
        return None
    # Measured against the database's clock, which set the notices' times.
    wait: timedelta = opening - usage["now"]
    return max(wait, timedelta(seconds=1))


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
    redact = _redactor(services, subscription)
    payloads: list[PayloadText | None] = [None] * len(deliveries)
    if redact is not None:
        payloads = await _payloads(
            tx, subscription["company_id"], [row["event_id"] for row in deliveries], redact
        )
    secret_names = [param["name"] for param in subscription["api_key_params"]]
    return render_failure_email(
        FailureNotice(
            to=notice["recipient"] or subscription["notification_email"],
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
                    payload=payload,
                )
                for row, payload in zip(deliveries, payloads, strict=True)
            ],
            reason=notice["reason"],
            redact=redact if redact is not None else Redactor(()),
        )
    )


def _redactor(services: Services, subscription: Row) -> Redactor | None:
    """A redactor of the subscription's secret values (see ``values_to_redact``), or None
    when one cannot be decrypted: the email then goes out without payloads, which might
    hold the value, rather than not at all."""
    key: uuid.UUID = subscription["id"]
    box = services.secret_box
    try:
        api_key_values = [
            box.decrypt(param["value"], context=param_context(key, param["name"]))
            for param in subscription["api_key_params"]
        ]
        header_values = [
            box.decrypt(header["value"], context=header_context(key, header["name"]))
            for header in subscription["headers"]
        ]
        signing_secrets = [
            box.decrypt(sealed, context=secret_context(key))
            for sealed in (subscription["signing_secret"], subscription["previous_signing_secret"])
            if sealed
        ]
    except SecretBoxError as error:
        logger.warning(
            "failure email without payloads: a secret of its subscription cannot be "
            "decrypted to mask it (%s)",
            type(error).__name__,
            extra={"subscription_id": str(key)},
        )
        return None
    return Redactor(
        values_to_redact(
            api_key_values=api_key_values,
            header_values=header_values,
            signing_secrets=signing_secrets,
        )
    )


async def _payloads(
    tx: Session, company_id: str, event_ids: list[uuid.UUID], redact: Redactor
) -> list[PayloadText | None]:
    """Each event's payload as the email shows it (None: unreadable, or past the email's
    payload budget), read a page of events at a time and only until the payloads read
    exceed that budget: a notice of thousands of deliveries reads about what it shows."""
    payloads: list[PayloadText | None] = []
    used = 0
    for start in range(0, len(event_ids), PAYLOAD_PAGE):
        page = event_ids[start : start + PAYLOAD_PAGE]
        rows = await tx.fetch_all(
            "notice_payloads", event_ids=list(set(page)), company_id=company_id
        )
        by_id = {row["id"]: row for row in rows}
        for event_id in page:
            row = by_id.get(event_id)
            payload = None
            if row is not None and used <= EMAIL_PAYLOAD_CAP_BYTES:
                payload = _payload_of(row, redact)
                used += payload.shown_bytes if payload is not None else 0
            payloads.append(payload)
        if used > EMAIL_PAYLOAD_CAP_BYTES:
            break
    return payloads + [None] * (len(event_ids) - len(payloads))


def _payload_of(row: Row, redact: Redactor) -> PayloadText | None:
    """The event's data, rendered: from the delivered body, else the stored payload."""
    if row["body"] is None:
        return render_payload(row["payload"], redact)
    try:
        data = json.loads(bytes(row["body"]))["data"]
    except (ValueError, KeyError, TypeError):
        # Only delivery_body writes bodies, so this is a bug; it must not keep the failure
        # email from going out.
        logger.exception("an event body is not the JSON envelope of its payload")
        return None
    return render_payload(data, redact)
