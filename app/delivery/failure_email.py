"""Failure email: the notice sent after the last attempt of a delivery fails.

Pure rendering: the caller loads the subscription, its failed deliveries, their
attempts and payloads (app/delivery/email_payload.py), masks the callback URL, and passes
plain values in, with a :class:`Redactor` of the subscription's secret values; this module
only turns them into an :class:`email.message.EmailMessage`. It unmasks nothing and looks
nothing up, so what it can reveal is exactly what it is given, and the text that came from
elsewhere (event subjects, attempt errors; payloads come redacted) goes through the
redactor.

Each delivery shows its payload until the email holds ``EMAIL_PAYLOAD_CAP_BYTES`` of
them; that delivery and every later one name their event without it, and a note near the
top says how many. Lines too long for SMTP as they are get a transfer encoding (see
:func:`_set_body`).

One notice may cover several deliveries of one subscription (grouped per window).
Its ``Message-ID`` is derived from the subscription and delivery ids, so sending the
same notice again yields the same id and mail clients and the outbox recognise it.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import quoprimime
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Final, Literal

from app.core.masking import Redactor, strip_query
from app.delivery.email_payload import (
    EMAIL_PAYLOAD_CAP_BYTES,
    PAYLOAD_CAP_BYTES,
    PayloadText,
    kib,
)

_PRODUCT = "PlanOmatic Webhooks"
_FALLBACK_DOMAIN = "planomatic-webhooks.invalid"
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
# Errors can be long (response excerpts, tracebacks); a line per attempt stays
# readable and the full text remains available through the API.
_MAX_ERROR_CHARS = 300
_MAX_SUBJECT_URL_CHARS = 60
_WIDTH = 76
# RFC 5322's recommended line length (its limit is 998); longer lines need encoding.
_MAX_LINE_BYTES = 78
# Bytes quoted-printable writes as they are (tab and space too, but at a line's end).
_QP_LITERAL = bytes([9, 10, 32, *(b for b in range(33, 127) if b != ord("="))])
_QP_RISKY_START = re.compile(r"^(?:From |\.)", re.MULTILINE)
_CAP = kib(PAYLOAD_CAP_BYTES)
_EMAIL_CAP = f"{EMAIL_PAYLOAD_CAP_BYTES // (1024 * 1024)} MiB"
# A delivery whose payload did not fit into the email's payload budget.
_LEFT_OUT: Final = "left out"
_Shown = PayloadText | Literal["left out"] | None
# The end of every deactivation reason: how the email's reader turns it back on.
REACTIVATE = "reactivate it with updateWebhookSubscription(isActive: true)"


@dataclass(frozen=True)
class AttemptLine:
    """One attempt of a failed delivery, as the email lists it."""

    number: int
    started_at: datetime
    response_status: int | None
    error: str | None


@dataclass(frozen=True)
class FailedDelivery:
    """A delivery whose last attempt failed, with its attempts."""

    delivery_id: str
    webhook_id: str
    event_id: str
    subject: str | None
    attempts: Sequence[AttemptLine]
    # None: the payload could not be read (the email says so and how to query it).
    payload: PayloadText | None = None


@dataclass(frozen=True)
class FailureNotice:
    """Everything one failure email says. ``callback_url_masked`` must already be masked."""

    to: str
    sender: str
    subscription_id: str
    webhook_key: str
    webhook_name: str
    callback_url_masked: str
    deliveries: Sequence[FailedDelivery]
    # Why delivery stopped early, when it did; e.g. "the endpoint answered 410 Gone,
    # so the subscription was deactivated".
    reason: str | None = None
    # The subscription's secret values, masked wherever outside text shows in the email.
    redact: Redactor = field(default_factory=lambda: Redactor(()), repr=False)


def notice_id(notice: FailureNotice) -> str:
    """A stable id for the notice: the same subscription and deliveries give the same id."""
    delivery_ids = sorted({delivery.delivery_id for delivery in notice.deliveries})
    digest = hashlib.sha256(
        "\n".join(["failure-notice", notice.subscription_id, *delivery_ids]).encode()
    ).hexdigest()
    return f"fn-{digest[:32]}"


def render_failure_email(notice: FailureNotice) -> EmailMessage:
    """Render the failure notice as a plain-text email, ready for a :class:`Mailer`.

    Raises :class:`ValueError` when the notice lists no deliveries: an empty notice
    would tell the reader nothing and hides a bug in the caller.
    """
    if not notice.deliveries:
        raise ValueError("a failure notice needs at least one failed delivery")
    identifier = notice_id(notice)
    message = EmailMessage()
    message["From"] = notice.sender
    message["To"] = notice.to
    message["Subject"] = _subject(notice)
    message["Message-ID"] = f"<{identifier}@{_domain_of(notice.sender)}>"
    message["X-PlanOmatic-Notice-Id"] = identifier
    # RFC 3834: tells vacation responders and ticket systems not to answer.
    message["Auto-Submitted"] = "auto-generated"
    _set_body(message, _body(notice))
    return message


def _subject(notice: FailureNotice) -> str:
    count = len(notice.deliveries)
    name = _one_line(notice.webhook_name)
    # The query string has no place in a subject line, even masked.
    target = _shorten(strip_query(notice.callback_url_masked), _MAX_SUBJECT_URL_CHARS)
    if count == 1:
        what = f"Delivery of {name} to {target} failed"
    else:
        what = f"{count} deliveries of {name} to {target} failed"
    return f"[{_PRODUCT}] {what}"


def _body(notice: FailureNotice) -> str:
    count = len(notice.deliveries)
    if count > 1:
        intro = (
            f"{_PRODUCT} could not deliver {count} events to your endpoint. Every attempt "
            "failed, so these deliveries are now marked FAILED."
        )
    else:
        intro = (
            f"{_PRODUCT} could not deliver an event to your endpoint. Every attempt "
            "failed, so the delivery is now marked FAILED."
        )
    lines = ["Hello,", "", textwrap.fill(intro, _WIDTH)]
    if notice.reason:
        lines += [
            "",
            textwrap.fill(f"Why delivery stopped: {_one_line(notice.reason).rstrip('.')}.", _WIDTH),
        ]
    lines += [
        "",
        f"Webhook:         {notice.webhook_name} ({notice.webhook_key})",
        f"Callback URL:    {notice.callback_url_masked}",
        f"Subscription id: {notice.subscription_id}",
    ]
    shown = _shown_payloads(notice.deliveries)
    left_out = shown.count(_LEFT_OUT)
    if left_out:
        lines += [
            "",
            textwrap.fill(
                f"The payloads of {left_out} of these {count} deliveries are left out: one "
                f"email shows at most {_EMAIL_CAP} of payloads. Each delivery names its "
                "event; query it to see the payload.",
                _WIDTH,
            ),
        ]
    for position, (delivery, payload) in enumerate(zip(notice.deliveries, shown, strict=True), 1):
        heading = f"Delivery {position} of {count}" if count > 1 else "Delivery"
        lines += ["", heading, "-" * len(heading), *_delivery_lines(notice, delivery, payload)]
    lines += ["", "What happens next", "-----------------", *_next_steps(notice)]
    return "\n".join(lines) + "\n"


def _shown_payloads(deliveries: Sequence[FailedDelivery]) -> list[_Shown]:
    """Each delivery's payload while the email's payload budget lasts; from the first one
    that does not fit on, :data:`_LEFT_OUT` (later ones are not squeezed in: the reader
    sees one point where payloads stop)."""
    shown: list[_Shown] = []
    used = 0
    full = False
    for delivery in deliveries:
        size = delivery.payload.shown_bytes if delivery.payload is not None else 0
        full = full or used + size > EMAIL_PAYLOAD_CAP_BYTES
        if full:
            shown.append(_LEFT_OUT)
        else:
            used += size
            shown.append(delivery.payload)
    return shown


def _payload_lines(event_id: str, payload: _Shown) -> list[str]:
    query = f'query {{ event(id: "{event_id}") {{ payload }} }}'
    if payload == _LEFT_OUT:
        return [
            f"Payload:     left out (this email already shows {_EMAIL_CAP} of payloads);",
            f"             the full event: {query}",
        ]
    if not isinstance(payload, PayloadText):
        return [f"Payload:     unavailable; the full event: {query}"]
    cut = f"payload cut at {_CAP} of {kib(payload.full_bytes)}"
    lines = [
        f"Payload (cut at {_CAP} of {kib(payload.full_bytes)}):" if payload.cut else "Payload:"
    ]
    # Indented, so no line of it can start with "From " or "." (which mbox files and SMTP
    # treat specially); JSON escapes CR and LF inside strings, so its lines are its own.
    lines += [f"  {line}" for line in payload.text.split("\n")]
    if payload.cut:
        lines.append(f"  [{cut}; the full event: {query}]")
    return lines


def _delivery_lines(notice: FailureNotice, delivery: FailedDelivery, payload: _Shown) -> list[str]:
    redact = notice.redact
    lines = [
        f"Event id:    {delivery.event_id}",
        f"Subject:     {_one_line(redact(delivery.subject)) if delivery.subject else '(none)'}",
        f"Delivery id: {delivery.delivery_id}",
        f"Webhook id:  {delivery.webhook_id}  (the webhook-id header of every attempt)",
        "Attempts:",
    ]
    attempts = sorted(delivery.attempts, key=lambda attempt: attempt.number)
    if not attempts:
        lines.append("  (none recorded)")
    for attempt in attempts:
        status = (
            f"HTTP {attempt.response_status}"
            if attempt.response_status is not None
            else "no response"
        )
        line = f"  #{attempt.number}  {_utc_iso(attempt.started_at)}  {status}"
        if attempt.error:
            line += f"  error: {_shorten(_one_line(redact(attempt.error)), _MAX_ERROR_CHARS)}"
        lines.append(line)
    return [*lines, *_payload_lines(delivery.event_id, payload)]


def _next_steps(notice: FailureNotice) -> list[str]:
    many = len(notice.deliveries) > 1
    delivery_id = "<delivery id>" if many else notice.deliveries[0].delivery_id
    return [
        f"Nothing more will be sent for {'these deliveries' if many else 'this delivery'} "
        "unless someone asks for a redelivery.",
        "",
        "Once your endpoint works again, redeliver through the GraphQL API. One delivery:",
        "",
        f'  mutation {{ redeliver(deliveryId: "{delivery_id}") '
        "{ delivery { id status } userErrors { message } } }",
        "",
        "Every failed delivery of this subscription created since a time:",
        "",
        f'  mutation {{ redeliverFailed(subscriptionId: "{notice.subscription_id}", '
        f'since: "{_redeliver_since(notice)}") {{ count userErrors {{ message }} }} }}',
        "",
        "A redelivery sends the same body with the same webhook-id header, so an endpoint",
        "that already processed it can recognise it.",
        "",
        "You receive this email because this address is the notification email of",
        f"subscription {notice.subscription_id}.",
    ]


def _set_body(message: EmailMessage, body: str) -> None:
    """The plain-text body, encoded for SMTP.

    Short lines go as they are (7bit or 8bit, the email package's choice). Longer ones
    (a payload's long strings, a long URL) need quoted-printable, which keeps ASCII
    readable, or base64 where that is shorter (mostly non-ASCII text, whose every byte
    costs three characters in quoted-printable; base64 costs a third more whatever the
    text, and is kept for that case because spam filters distrust base64 ASCII text).
    Quoted-printable's soft breaks fall anywhere, so one could open a line with "From "
    (an mbox file takes that for the next message) or "." (SMTP's end of data, unless
    stuffed): those line starts are written as escapes, in lines short enough for them.
    """
    data = body.encode()
    if max(len(line) for line in data.split(b"\n")) <= _MAX_LINE_BYTES:
        message.set_content(body)
        return
    if 6 * len(data.translate(None, _QP_LITERAL)) > len(data):
        message.set_content(body, cte="base64")
        return
    # The headers only; the payload is encoded here, with room for the escapes.
    message.set_content("", cte="quoted-printable")
    encoded = quoprimime.body_encode(data.decode("latin-1"), _MAX_LINE_BYTES - 4)
    message.set_payload(_QP_RISKY_START.sub(_escape_line_start, encoded))


def _escape_line_start(match: re.Match[str]) -> str:
    return "=2E" if match.group() == "." else "=46rom "


def _redeliver_since(notice: FailureNotice) -> str:
    starts = [attempt.started_at for d in notice.deliveries for attempt in d.attempts]
    if not starts:
        return "<ISO-8601 time>"
    # A delivery is created shortly before its first attempt; an hour's margin, rounded
    # down to the hour, covers queue delays and still reads as a plain time.
    earliest = min(_as_utc(moment) for moment in starts) - timedelta(hours=1)
    return _utc_iso(earliest.replace(minute=0, second=0, microsecond=0))


def _as_utc(moment: datetime) -> datetime:
    # The database hands back aware timestamps; a naive one is taken to be UTC already.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _utc_iso(moment: datetime) -> str:
    return _as_utc(moment).isoformat(timespec="seconds").replace("+00:00", "Z")


def _one_line(text: str) -> str:
    # Collapsing whitespace keeps a multi-line error from breaking the layout or
    # passing off its own lines as part of the notice.
    return " ".join(text.split())


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _domain_of(sender: str) -> str:
    domain = parseaddr(sender)[1].rpartition("@")[2]
    return domain if _DOMAIN.fullmatch(domain) else _FALLBACK_DOMAIN
