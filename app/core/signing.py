"""Signing: Standard Webhooks v1 signatures and the headers every delivery carries.

A subscription's secret looks like ``whsec_<base64 of 24 to 64 random bytes>``. The
signature of one attempt is ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``,
so any receiver can check it with the off-the-shelf ``standardwebhooks`` or ``svix``
libraries. During a secret rotation the old and new signatures are both sent,
space-separated, and a receiver holding either secret accepts the request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as random_source
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata

from app.core.masking import MASK

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
# The Standard Webhooks specification asks for keys of 24 to 64 bytes; anything outside
# that range is more likely a pasting mistake than a deliberate choice.
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64

DISTRIBUTION = "planomatic-webhooks"
# The W3C trace context header a traced attempt sends (app/delivery/attempt_trace.py).
TRACEPARENT = "traceparent"


def generate_secret() -> str:
    """A new random signing secret: ``whsec_`` followed by base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(random_source.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one attempt's ``body`` under ``secret``.

    Raises ValueError for a malformed secret (the message never repeats the secret), a
    message id that is empty or contains ``.`` (it would make the signed content
    ambiguous), or a negative timestamp.
    """
    key = _secret_key(secret)
    if not message_id or "." in message_id:
        raise ValueError("message id must be non-empty and must not contain '.'")
    if timestamp < 0:
        raise ValueError("timestamp must be a non-negative number of Unix seconds")
    signed_content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed_content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per secret, space-separated.

    Pass the current secret and, during a rotation, the previous one as well.
    """
    if isinstance(secrets, str):
        # A bare string is a Sequence[str] too; signing each character would be a bug.
        raise TypeError("secrets must be a sequence of secrets, not a single string")
    if not secrets:
        raise ValueError("at least one secret is needed to sign a delivery")
    return " ".join(sign(secret, message_id, timestamp, body) for secret in secrets)


def webhook_headers(
    secrets: Sequence[str],
    message_id: str,
    timestamp: int,
    body: bytes,
    *,
    attempt: int,
    sequence: int | None = None,
) -> dict[str, str]:
    """Every header of one delivery attempt, as the delivery contract lists them.

    ``attempt`` is informative for the receiver (1 for the first try); it is not part
    of the signed content, so the same body and id verify on every attempt. ``sequence``,
    a delivery's number among its subject's on a subscription ordered per subject, is
    sent as ``webhook-sequence`` (not signed either: the body is shared by every
    subscription of the event, the number is not).
    """
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    return _our_headers(
        user_agent(),
        message_id,
        timestamp,
        signature_header(secrets, message_id, timestamp, body),
        attempt,
        sequence,
    )


@dataclass(frozen=True)
class SentHeaders:
    """What an attempt's record keeps of its headers, beyond what its delivery says
    (webhook-id, webhook-sequence) and its number (webhook-attempt): what differs from
    one attempt to the next or could change afterwards (the version, the secrets, the
    subscription's custom headers). Custom header values are never kept."""

    timestamp: int
    signature: str
    user_agent: str
    custom_names: tuple[str, ...]
    # The W3C traceparent of the attempt's span, sent last (app/delivery/attempt_trace.py);
    # None when none was.
    traceparent: str | None = None

    @classmethod
    def of(
        cls, ours: Mapping[str, str], sent: Mapping[str, str], *, traceparent: str | None = None
    ) -> SentHeaders:
        """The record of ``sent``, the headers of an attempt with ``ours`` among them and,
        when ``traceparent`` is given, that ``traceparent`` header too."""
        return cls(
            timestamp=int(ours["webhook-timestamp"]),
            signature=ours["webhook-signature"],
            user_agent=ours["user-agent"],
            custom_names=tuple(
                name
                for name in sent
                if name not in ours and (traceparent is None or name != TRACEPARENT)
            ),
            traceparent=traceparent,
        )


def shown_headers(
    sent: SentHeaders, message_id: str, *, attempt: int, sequence: int | None
) -> list[tuple[str, str]]:
    """An attempt's headers as they were sent, in that order, custom header values masked
    (``MASK``, as API key parameter values are in a URL)."""
    ours = _our_headers(
        sent.user_agent, message_id, sent.timestamp, sent.signature, attempt, sequence
    )
    shown = [*((name, MASK) for name in sent.custom_names), *ours.items()]
    if sent.traceparent is not None:
        shown.append((TRACEPARENT, sent.traceparent))
    return shown


def _our_headers(
    agent: str,
    message_id: str,
    timestamp: int,
    signature: str,
    attempt: int,
    sequence: int | None,
) -> dict[str, str]:
    # The one list of them: what an attempt sends and what its record shows.
    headers = {
        "content-type": "application/json",
        "user-agent": agent,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
        "webhook-attempt": str(attempt),
    }
    if sequence is not None:
        headers["webhook-sequence"] = str(sequence)
    return headers


@cache
def user_agent() -> str:
    """``PlanOmatic-Webhooks/<version>``, the version of the installed distribution."""
    try:
        version = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        # Running from a source tree that was never installed: still send a valid token.
        version = "0"
    return f"PlanOmatic-Webhooks/{version}"


def _secret_key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"malformed webhook secret: it must start with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        # Chained exceptions would carry the offending text; raise a clean one instead.
        raise ValueError(
            f"malformed webhook secret: the part after {SECRET_PREFIX!r} is not valid base64"
        ) from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(
            f"malformed webhook secret: the key must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} "
            f"bytes, got {len(key)}"
        )
    return key
