"""The event payload in a failure email: pretty JSON, secrets redacted, within caps.

PlanOmatic's reference promises the webhook payload in the email sent after the last
failed attempt. Each delivery shows its event's ``data`` as the receiver got it (keys in
the publisher's order), indented two spaces, non-ASCII kept. Characters that would
mislead a reader of plain text (C1 controls, bidirectional overrides, Unicode line
separators) are written as JSON escapes instead: they can only stand inside JSON strings,
so the text still parses to the same value.

Caps: one payload shows at most :data:`PAYLOAD_CAP_BYTES` of UTF-8 text, cut on a
character boundary, and one email at most :data:`EMAIL_PAYLOAD_CAP_BYTES` of payloads
(app/delivery/failure_email.py applies that one; later deliveries name their event
without the payload).

Redaction: the payload is the publisher's, but a subscription's secret values must not
reach an email whatever it holds, so every value :func:`values_to_redact` gathers is
masked, in each form it could take in the text, before the text is cut (a cut first
could leave the start of a value standing).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from app.core.masking import Redactor

PAYLOAD_CAP_BYTES = 64 * 1024
# Sixteen payloads at their own cap; a payload-laden email stays well inside what mail
# servers accept (commonly 10 MiB and more, base64 included).
EMAIL_PAYLOAD_CAP_BYTES = 1024 * 1024

_MISLEADING = {
    code: f"\\u{code:04x}"
    for code in (
        *range(0x7F, 0xA0),  # DEL and the C1 controls (NEL among them)
        0x061C,  # Arabic letter mark
        0x200E,  # left-to-right and right-to-left marks
        0x200F,
        0x2028,  # line and paragraph separators
        0x2029,
        *range(0x202A, 0x202F),  # embeddings and overrides
        *range(0x2066, 0x206A),  # isolates
    )
}


@dataclass(frozen=True)
class PayloadText:
    """A payload as one email shows it."""

    text: str
    # UTF-8 bytes of the whole (redacted) text, and of the part shown.
    full_bytes: int
    shown_bytes: int

    @property
    def cut(self) -> bool:
        return self.shown_bytes < self.full_bytes


def values_to_redact(
    *,
    api_key_values: Iterable[str],
    header_values: Iterable[str],
    signing_secrets: Iterable[str],
) -> tuple[str, ...]:
    """Everything of one subscription that a failure email must never show, decrypted,
    each in every form it could take there: as written, JSON-escaped (as it would stand
    in the pretty payload) and URL-encoded (as it goes out in a query string).

    A signing secret counts with and without its ``whsec_`` prefix (receivers store
    either). The one place to add a new kind of secret value of a subscription.
    """
    values: list[str] = [*api_key_values, *header_values]
    for secret in signing_secrets:
        values += [secret, secret.removeprefix("whsec_")]
    forms: dict[str, None] = {}
    for value in values:
        if value:
            forms.update(dict.fromkeys((value, _json_text(value)[1:-1], quote_plus(value))))
    return tuple(forms)


def render_payload(data: Any, redact: Redactor) -> PayloadText:
    """The payload as pretty JSON, redacted, cut at :data:`PAYLOAD_CAP_BYTES`."""
    encoded = redact(_json_text(data)).encode()
    if len(encoded) <= PAYLOAD_CAP_BYTES:
        return PayloadText(encoded.decode(), len(encoded), len(encoded))
    end = PAYLOAD_CAP_BYTES
    # Back to the first byte of a character: continuation bytes are 0b10xxxxxx, and a
    # character has at most three of them. Python strings hold code points, so no
    # surrogate pair can be split either.
    while encoded[end] & 0xC0 == 0x80:
        end -= 1
    return PayloadText(encoded[:end].decode(), len(encoded), end)


def kib(size: int) -> str:
    """A size for a reader, in whole KiB rounded up (a cut payload is never "64 of 64")."""
    return f"{-(-size // 1024)} KiB"


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False).translate(_MISLEADING)
