"""The attempt span: each delivery attempt's HTTP exchange as a CLIENT span.

The span continues the trace of the ``publishEvent`` call that made the delivery (its
``traceparent`` was stored with the event, app/core/tracing.py) and links to that span, so
an attempt made six minutes later in another worker process joins the same trace. With
``WEBHOOKS_SEND_TRACEPARENT`` on (the default) the request carries the attempt span's
``traceparent``, so a receiver that traces can join too; it is not signed (the signature
covers id, timestamp and body only). With tracing off nothing changes: no span, no header.

Attributes are ids, numbers, the URL as the attempt record shows it (API key parameter
values masked) and the error's kind, never its text: no payload, no header value, no
response.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.trace import Status, StatusCode

from app.core import tracing
from app.core.attempt_errors import is_error_answer, phrase_kind
from app.core.signing import TRACEPARENT
from app.delivery.outgoing import OutgoingDelivery
from app.delivery.transport import AttemptOutcome, Transport

ATTEMPT_SPAN = "webhook attempt"


@dataclass(frozen=True)
class SentAttempt:
    """What one attempt sent and what came of it: the headers exactly as sent (ours,
    and the attempt span's ``traceparent`` when one was sent) for its record to show, and
    the span's ``traceparent`` (sent or not) for the operator event it may cause."""

    outcome: AttemptOutcome
    headers: Mapping[str, str]
    traceparent: str | None = None
    span_traceparent: str | None = None


def error_kind(outcome: AttemptOutcome) -> str | None:
    """A short, fixed name for why an attempt failed (None when it succeeded): the status
    code of an error answer (as OpenTelemetry's HTTP conventions have it), else the kind
    of the transport's phrase, never the phrase itself (it may name hosts or addresses)."""
    if outcome.error is None:
        return None
    if is_error_answer(outcome.error) and outcome.status is not None:
        return str(outcome.status)
    return phrase_kind(outcome.error) or "_OTHER"


def attempt_attributes(
    delivery: OutgoingDelivery, attempt: int, masked_url: str
) -> dict[str, tracing.Attribute]:
    """What an attempt span says from the start."""
    return {
        "webhooks.delivery.id": str(delivery.id),
        "webhooks.webhook_id": delivery.webhook_id,
        "webhooks.attempt.number": attempt,
        "webhooks.delivery.cycle": delivery.cycle,
        "webhooks.subscription.id": str(delivery.endpoint.subscription_id),
        "webhooks.event.id": str(delivery.event_id),
        "webhooks.company.id": delivery.company_id,
        "http.request.method": "POST",
        "url.full": masked_url,
    }


def with_traceparent(headers: Mapping[str, str], traceparent: str) -> dict[str, str]:
    """``headers`` with our ``traceparent`` instead of any the subscription set."""
    kept = {name: value for name, value in headers.items() if name.lower() != TRACEPARENT}
    kept[TRACEPARENT] = traceparent
    return kept


async def traced_send(
    transport: Transport,
    delivery: OutgoingDelivery,
    attempt: int,
    url: str,
    masked_url: str,
    headers: Mapping[str, str],
    *,
    send_traceparent: bool,
) -> SentAttempt:
    """``transport.send`` of one attempt, in its span when tracing is on."""
    if not tracing.enabled():
        return SentAttempt(await transport.send(url, delivery.body, headers), headers)
    span = tracing.start_linked_span(
        ATTEMPT_SPAN, delivery.traceparent, attempt_attributes(delivery, attempt, masked_url)
    )
    if span is None:  # tracing was switched off meanwhile
        return SentAttempt(await transport.send(url, delivery.body, headers), headers)
    try:
        span_traceparent = tracing.traceparent_of(span)
        traceparent = span_traceparent if send_traceparent else None
        if traceparent is not None:
            headers = with_traceparent(headers, traceparent)
        outcome = await transport.send(url, delivery.body, headers)
        if outcome.status is not None:
            span.set_attribute("http.response.status_code", outcome.status)
        kind = error_kind(outcome)
        if kind is not None:
            span.set_attribute("error.type", kind)
            span.set_status(Status(StatusCode.ERROR))
        return SentAttempt(outcome, headers, traceparent, span_traceparent)
    except BaseException as error:  # cancelled (the worker stops): the span says so
        span.set_attribute("error.type", type(error).__name__)
        span.set_status(Status(StatusCode.ERROR))
        raise
    finally:
        span.end()
