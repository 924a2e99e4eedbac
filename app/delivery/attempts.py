"""Attempts: make one delivery attempt and record what came of it.

``make_attempt`` is what the delivery job runs. It is idempotent: a delivery that is
finished, cancelled, in another cycle or already past this attempt is left alone, and
the attempt row's primary key makes a replayed job unable to record anything twice.
The outcome is recorded in ONE transaction together with the delivery's new state and
the next job (the next attempt, or the failure email), so queue and rows never disagree;
an outcome that ends the delivery for good or ends its subscription's failing carries
its operator event in that transaction (app/delivery/operator_events.py).

An attempt that was sent but cannot be recorded must not be sent again and again: when
recording fails for any reason but an unavailable database, the attempt is recorded
without the response; when even that fails, the job ends without retrying and the
maintenance loop's bounded re-queueing (``app/delivery/worker.py``) takes over, ending in
:func:`give_up` (the delivery FAILED, its notification email sent).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from procrastinate.jobs import DEFAULT_PRIORITY

from app.core.masking import masked_url
from app.core.outages import is_connection_lost
from app.core.secret_box import secret_context
from app.core.signing import SentHeaders, webhook_headers
from app.core.validation import reserved_header
from app.delivery import metrics
from app.delivery.attempt_loads import AttemptLoads
from app.delivery.attempt_trace import traced_send
from app.delivery.failure_email import REACTIVATE
from app.delivery.fairness import InFlight, postponement_seconds
from app.delivery.notices import queue_failure_report
from app.delivery.operator_events import Cause, report_failure, report_gone, report_recovery
from app.delivery.outgoing import (
    Endpoint,
    OutgoingDelivery,
    opened_headers,
    opened_params,
    outgoing_from_row,
)
from app.delivery.pacing import WakeUps, wait_for_slot
from app.delivery.retry_rule import FailedForGood, RetryAt, Succeeded, next_step
from app.delivery.transport import AttemptOutcome, Transport, storable_text
from app.store.database import Row, Session
from app.store.queue import (
    DELETE_SUCCEEDED_JOBS,
    AttemptJob,
    cancel_open_deliveries,
    defer_attempts,
    job_finished,
)
from app.store.services import Services

logger = logging.getLogger(__name__)

Result = Literal[
    "succeeded",
    "retrying",
    "failed",
    "skipped",
    "cancelled",
    "already-recorded",
    "missing",
    "postponed",
    "paced",
    "unrecorded",
]

UNRECORDED_BODY = "[the response could not be recorded ({error})]"

# Postponed attempts yield to every other due attempt: they are over their subscription's
# share already, and fresh work for other subscriptions must not queue behind them.
POSTPONED_PRIORITY = DEFAULT_PRIORITY - 1

GONE_REASON = f"the endpoint answered 410 Gone, so the subscription was deactivated; {REACTIVATE}"


@dataclass(frozen=True)
class Target:
    """Where and how to send: URL with API key parameters, the signing secrets and the
    subscription's custom headers."""

    url: str
    masked_url: str
    secrets: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]


def build_target(services: Services, endpoint: Endpoint, now: datetime) -> Target:
    """Decrypt the subscription's secrets and headers, and append its API key parameters
    to the URL."""
    subscription_id = endpoint.subscription_id
    params = opened_params(services.secret_box, endpoint)
    parts = urlsplit(endpoint.callback_url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params])
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    secrets = [
        services.secret_box.decrypt(
            endpoint.signing_secret, context=secret_context(subscription_id)
        )
    ]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_signing_secret and expires is not None and expires > now:
        secrets.append(
            services.secret_box.decrypt(
                endpoint.previous_signing_secret, context=secret_context(subscription_id)
            )
        )
    return Target(
        url=url,
        masked_url=masked_url(url, [name for name, _ in params]),
        secrets=tuple(secrets),
        headers=tuple(opened_headers(services.secret_box, endpoint)),
    )


def request_headers(ours: Mapping[str, str], custom: Sequence[tuple[str, str]]) -> dict[str, str]:
    """An attempt's headers: the subscription's custom ones, then ours over them. A custom
    header never stands beside or replaces one of ours, whatever its case, nor one the
    rules reserve: the create and update checks refuse them, and this holds even for a
    row stored before a rule was added."""
    taken = {name.lower() for name in ours}
    headers = {
        name: value
        for name, value in custom
        if name.lower() not in taken and reserved_header(name) is None
    }
    headers.update(ours)
    return headers


async def make_attempt(
    services: Services,
    transport: Transport,
    delivery_id: str,
    cycle: int,
    attempt: int,
    in_flight: InFlight | None = None,
    postponed: int = 0,
    held_slot: datetime | None = None,
    missed_slots: int = 0,
    wake_ups: WakeUps | None = None,
    job_id: int | None = None,
    loads: AttemptLoads | None = None,
) -> Result:
    """Send attempt ``attempt`` of ``cycle`` of a delivery, unless that makes no sense now.

    With ``in_flight``, an attempt that this worker's fairness rules refuse a slot (its
    subscription has its share, or slow endpoints have theirs) is postponed (re-queued
    later, nothing recorded) instead; ``postponed`` says how often that already happened.
    One refused by its subscription's cap may first wait for that subscription's next
    slot (:meth:`InFlight.acquire`), unless the subscription has a delivery rate.
    An attempt to a subscription with a delivery rate then waits for its slot: the one it
    holds (``held_slot``), or one it reserves now, re-queued for it unless it is soon; a
    slot it came too late for is given up for the next (``missed_slots`` so far, bounded)
    (app/delivery/pacing.py).

    ``job_id`` is the Procrastinate job running it: the statement that records the attempt
    finishes that job too, and tells the worker so (:func:`app.store.queue.job_finished`).
    With ``loads``, the delivery is loaded together with those of the attempts starting
    with it.
    """
    key = uuid.UUID(delivery_id)
    delivery = await (loads.load(key) if loads is not None else _load(services, key))
    log = {"delivery_id": delivery_id, "attempt": attempt}
    if delivery is None:
        logger.warning("delivery not found; nothing to send", extra=log)
        return "missing"
    log["company_id"] = delivery.company_id
    skip = _skip_reason(delivery, cycle, attempt)
    if skip is not None:
        logger.info("attempt skipped: %s", skip, extra=log)
        return "already-recorded" if skip == "already recorded" else "skipped"
    if not delivery.endpoint.is_open:
        await services.db.execute("cancel_delivery", id=key)
        logger.info("subscription inactive; delivery cancelled", extra=log)
        return "cancelled"

    subscription_id = delivery.endpoint.subscription_id
    job = AttemptJob(key, cycle, attempt, postponed, held_slot, missed_slots)
    slot = None
    if in_flight is not None:
        # Taken before the rate slot, so that a refusal wastes none. A paced attempt never
        # waits here: it holds a rate slot, or will, and sent after a wait for the cap it
        # would go that much late, together with the slots after it.
        paced = delivery.endpoint.max_deliveries_per_second is not None
        slot = (
            in_flight.try_acquire(subscription_id)
            if paced
            else await in_flight.acquire(subscription_id)
        )
    if in_flight is not None and slot is None:
        await postpone(services, key, cycle, attempt, postponed)
        return "postponed"
    # A slot given back by an attempt re-queued for its rate slot says nothing of the
    # endpoint: the subscription stays the kind it was (proven, unknown, suspect).
    attempted = False
    try:
        if not await wait_for_slot(services, delivery, job, wake_ups):
            return "paced"
        attempted = True
        target = build_target(services, delivery.endpoint, datetime.now(UTC))
        signed = webhook_headers(
            target.secrets,
            delivery.webhook_id,
            int(time.time()),
            delivery.body,
            attempt=attempt,
            sequence=delivery.sequence,
        )
        headers = request_headers(signed, target.headers)
        sent_attempt = await traced_send(
            transport,
            delivery,
            attempt,
            target.url,
            target.masked_url,
            headers,
            send_traceparent=services.settings.send_traceparent,
        )
    finally:
        if in_flight is not None and slot is not None:
            in_flight.release(slot, attempted=attempted)
    outcome = sent_attempt.outcome
    # What was sent, not what was meant: the span's traceparent replaced a custom header
    # of that name, if the subscription has one.
    sent = SentHeaders.of(signed, sent_attempt.headers, traceparent=sent_attempt.traceparent)
    result = await _record_sent(
        services,
        delivery,
        cycle,
        attempt,
        outcome,
        target.masked_url,
        sent,
        job_id,
        trace=sent_attempt.span_traceparent,
    )
    if result == "unrecorded":
        return result
    if result != "already-recorded":
        final = {"succeeded": "succeeded", "failed": "failed"}.get(result)
        metrics.record_attempt(outcome.status, outcome.duration_ms, final)
    logger.info(
        "attempt %s to %s: %s (%s)",
        attempt,
        target.masked_url,
        result,
        outcome.error or outcome.status,
        extra=log,
    )
    return result


async def _load(services: Services, delivery_id: uuid.UUID) -> OutgoingDelivery | None:
    row = await services.db.fetch_one("load_attempt_contexts", ids=[delivery_id])
    return None if row is None else outgoing_from_row(row)


async def _record_sent(
    services: Services,
    delivery: OutgoingDelivery,
    cycle: int,
    attempt: int,
    outcome: AttemptOutcome,
    masked_target: str,
    sent: SentHeaders,
    job_id: int | None,
    *,
    trace: str | None = None,
) -> Result:
    """Record an attempt that was sent (``sent``: its headers; ``trace``: its span's
    traceparent, which an operator event it causes continues); if its outcome cannot be
    recorded, record it without the response; if that fails too, say so instead of
    raising (a retried job would send it again).

    Only a lost connection (``app.core.outages.is_connection_lost``) is raised, for the job to
    be retried at the cost of sending the attempt again (at-least-once): a retry finds
    the database away before it sends. Any other error, even an OperationalError such as
    a statement timeout or a full disk, would fail again after a retry had re-sent it.
    """
    log = {"delivery_id": str(delivery.id), "attempt": attempt, "company_id": delivery.company_id}
    try:
        return await record_outcome(
            services,
            delivery,
            cycle,
            attempt,
            outcome,
            masked_target,
            sent=sent,
            job_id=job_id,
            trace=trace,
        )
    except Exception as exc:
        if is_connection_lost(exc):
            raise
        logger.exception(
            "could not record attempt %s; recording it without the response", attempt, extra=log
        )
        failure = type(exc).__name__
        metrics.RECORD_FAILURES.labels("without_response").inc()
    bare = replace(
        outcome,
        body_excerpt=UNRECORDED_BODY.format(error=failure),
        error=None if outcome.error is None else storable_text(outcome.error.encode()),
    )
    try:
        return await record_outcome(
            services,
            delivery,
            cycle,
            attempt,
            bare,
            masked_target,
            sent=sent,
            job_id=job_id,
            trace=trace,
        )
    except Exception as exc:
        if is_connection_lost(exc):
            raise
        logger.exception(
            "could not record attempt %s at all; the maintenance loop will re-queue it a "
            "bounded number of times, then give up on it",
            attempt,
            extra=log,
        )
        metrics.RECORD_FAILURES.labels("nothing").inc()
        return "unrecorded"


async def give_up(services: Services, delivery_id: uuid.UUID, reason: str) -> Result:
    """End an open delivery as FAILED with one last attempt that says why (no response,
    ``reason`` as its error), and queue its failure email."""
    delivery = await _load(services, delivery_id)
    if delivery is None or delivery.status not in ("PENDING", "RETRYING"):
        return "skipped"
    if not delivery.endpoint.is_open:
        await services.db.execute("cancel_delivery", id=delivery_id)
        return "cancelled"
    outcome = AttemptOutcome(
        succeeded=False,
        status=None,
        body_excerpt=None,
        error=reason,
        duration_ms=0,
        started_at=datetime.now(UTC),
    )
    result = await record_outcome(
        services, delivery, delivery.cycle, delivery.attempt_count + 1, outcome, final=True
    )
    if result == "failed":
        metrics.RECORD_FAILURES.labels("gave_up").inc()
        logger.error(
            "gave up on delivery %s: %s",
            delivery_id,
            reason,
            extra={"delivery_id": str(delivery_id), "company_id": delivery.company_id},
        )
    return result


async def postpone(
    services: Services, delivery_id: uuid.UUID, cycle: int, attempt: int, postponed: int = 0
) -> None:
    """Re-queue the same attempt later (its subscription is busy in this worker), each
    time twice as late, up to the request timeout."""
    delay = postponement_seconds(postponed, services.settings.request_timeout_seconds)
    async with services.db.transaction() as tx:
        await defer_attempts(
            services.queue,
            tx,
            [AttemptJob(delivery_id, cycle, attempt, postponed + 1)],
            schedule_at=datetime.now(UTC) + timedelta(seconds=delay),
            priority=POSTPONED_PRIORITY,
        )


def _skip_reason(delivery: OutgoingDelivery, cycle: int, attempt: int) -> str | None:
    if delivery.status not in ("PENDING", "RETRYING"):
        return f"delivery is {delivery.status}"
    if delivery.cycle != cycle:
        return f"delivery is in cycle {delivery.cycle}, not {cycle}"
    if delivery.attempt_count >= attempt:
        return "already recorded"
    if delivery.attempt_count != attempt - 1:
        return f"attempt {delivery.attempt_count + 1} comes first"
    return None


async def record_outcome(
    services: Services,
    delivery: OutgoingDelivery,
    cycle: int,
    attempt: int,
    outcome: AttemptOutcome,
    masked_target: str | None = None,
    *,
    sent: SentHeaders | None = None,
    final: bool = False,
    job_id: int | None = None,
    trace: str | None = None,
) -> Result:
    """Record the attempt, advance the delivery and queue what follows, atomically.

    ``masked_target`` is the URL the attempt went to, API key parameter values masked;
    ``sent`` what its record keeps of its headers (None: nothing was sent).
    ``final`` makes a failed attempt the last one, whatever its number.
    ``job_id``, the job running the attempt, is finished with the record, atomically.
    ``trace`` is the attempt span's traceparent: an operator event the outcome causes
    joins that trace.
    """
    step = next_step(
        succeeded=outcome.succeeded,
        response_status=outcome.status,
        attempt=attempt,
        max_attempts=delivery.max_attempts,
        finished_at=datetime.now(UTC),
        interval=timedelta(seconds=services.settings.retry_interval_seconds),
        final=final,
    )
    next_attempt_at = step.moment if isinstance(step, RetryAt) else None

    recording = {
        "delivery_id": delivery.id,
        "cycle": cycle,
        "number": attempt,
        "company_id": delivery.company_id,
        "started_at": outcome.started_at,
        "duration_ms": outcome.duration_ms,
        "response_status": outcome.status,
        "response_body": outcome.body_excerpt,
        "error": outcome.error,
        "succeeded": outcome.succeeded,
        "url": masked_target,
        "webhook_timestamp": None if sent is None else sent.timestamp,
        "signature": None if sent is None else sent.signature,
        "user_agent": None if sent is None else sent.user_agent,
        "header_names": None if sent is None else list(sent.custom_names),
        "traceparent": None if sent is None else sent.traceparent,
        "status": step.status,
        "next_attempt_at": next_attempt_at,
        "subscription_id": delivery.endpoint.subscription_id,
        "recover": False,
        "job_id": job_id,
        "delete_job": DELETE_SUCCEEDED_JOBS,
    }
    if isinstance(step, Succeeded):
        # Nothing follows a success: the one statement is atomic by itself, unless it
        # ends the subscription's failing (then it records nothing and says so).
        recorded = await services.db.fetch_one("record_attempt", **recording)
        if recorded is not None and recorded["failing"]:
            recorded = await _record_recovery(
                services, Cause(delivery, cycle, attempt, outcome, trace), recording
            )
        _finished(services, job_id, recorded)
        return _not_recorded(recorded) or "succeeded"
    result, recorded = await _record_in_transaction(
        services, Cause(delivery, cycle, attempt, outcome, trace), step, recording
    )
    # Only now that the transaction committed is the job closed for good.
    _finished(services, job_id, recorded)
    return result


def _finished(services: Services, job_id: int | None, recorded: Row | None) -> None:
    """Tell the worker the job is finished if the committed ``record_attempt`` says it
    finished it."""
    if job_id is not None and recorded is not None and recorded["job_finished"]:
        job_finished(services.queue, job_id)


async def _record_in_transaction(
    services: Services,
    cause: Cause,
    step: RetryAt | FailedForGood,
    recording: dict[str, object],
) -> tuple[Result, Row | None]:
    """Record a retry or a failure with what follows it, in one transaction; returns the
    result and what ``record_attempt`` answered."""
    delivery, cycle, attempt = cause.delivery, cause.cycle, cause.attempt
    async with services.db.transaction() as tx:
        if isinstance(step, FailedForGood) and step.gone:
            # The subscription is closed below, after this attempt's delivery is locked by
            # its record: lock it first, as closing it through the API does (subscription,
            # then deliveries), or the two wait for each other.
            await tx.execute("lock_subscription", id=delivery.endpoint.subscription_id)
        recorded = await tx.fetch_one("record_attempt", **recording)
        not_recorded = _not_recorded(recorded)
        if not_recorded is not None:
            return not_recorded, recorded
        if isinstance(step, RetryAt):
            await defer_attempts(
                services.queue,
                tx,
                [AttemptJob(delivery.id, cycle, attempt + 1)],
                schedule_at=step.moment,
            )
            return "retrying", recorded
        await tx.execute("mark_failing", id=delivery.endpoint.subscription_id)
        max_attempts = services.settings.max_attempts
        await report_failure(
            tx, cause, given_up=step.reason == "given up", max_attempts=max_attempts
        )
        reason = await _deactivate_if_gone(tx, cause, step.gone, max_attempts)
        await queue_failure_report(services, tx, delivery, cycle, reason=reason)
        return "failed", recorded


async def _record_recovery(
    services: Services, cause: Cause, recording: dict[str, object]
) -> Row | None:
    """Record a success to a failing subscription, clearing its marker, together with the
    SUBSCRIPTION_RECOVERED event (only the first of concurrent successes finds it set);
    returns what ``record_attempt`` answered."""
    subscription_id = cause.delivery.endpoint.subscription_id
    async with services.db.transaction() as tx:
        marker = await tx.fetch_one("lock_failing_subscription", id=subscription_id)
        recorded = await tx.fetch_one("record_attempt", **{**recording, "recover": True})
        not_recorded = _not_recorded(recorded)
        if not_recorded is None:
            await tx.execute("clear_failing", id=subscription_id)
            if marker is not None and marker["failing_since"] is not None:
                await report_recovery(
                    tx,
                    cause,
                    marker["failing_since"],
                    max_attempts=services.settings.max_attempts,
                )
    return recorded


def _not_recorded(recorded: Row | None) -> Result | None:
    """Why ``record_attempt`` changed nothing, if it did not."""
    if recorded is None or not recorded["recorded"]:
        return "already-recorded"
    if not recorded["advanced"]:
        # Cancelled (or redelivered) while this attempt was in flight: the attempt is
        # kept, nothing more is sent.
        return "cancelled"
    return None


async def _deactivate_if_gone(
    tx: Session, cause: Cause, gone: bool, max_attempts: int
) -> str | None:
    """Standard Webhooks: a 410 means the endpoint is gone for good; stop sending to it
    (SUBSCRIPTION_DEACTIVATED says so)."""
    if not gone:
        return None
    subscription_id = cause.delivery.endpoint.subscription_id
    changed = await tx.fetch_one("deactivate_subscription", id=subscription_id, reason=GONE_REASON)
    await cancel_open_deliveries(tx, subscription_id)
    if changed is not None:
        await report_gone(tx, cause, changed, max_attempts=max_attempts)
    return GONE_REASON
