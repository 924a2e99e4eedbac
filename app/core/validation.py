"""Input validation shared by the mutations: each check returns UserErrors, never raises."""

from __future__ import annotations

import contextlib
import json
import re
import unicodedata
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from app.core.errors import Field, UserError, UserErrorCode

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_PARAM_NAME = re.compile(r"^[A-Za-z0-9_.~-]{1,64}$")
MAX_API_KEY_PARAMS = 10
MAX_PARAM_VALUE = 1024
MAX_DESCRIPTION = 500
MAX_SUBJECT = 200
MAX_IDEMPOTENCY_KEY = 200
MAX_HEADERS = 20
MAX_HEADER_NAME = 64
MAX_HEADER_VALUE = 4096
# A subscription's delivery rate, in deliveries per second (app/delivery/pacing.py). Above
# this a receiver is no weak one, and one paced attempt costs a worker about two jobs.
MIN_DELIVERIES_PER_SECOND = 1
MAX_DELIVERIES_PER_SECOND = 1000

# RFC 9110 section 5.6.2: a field name is a token.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible ASCII with inner spaces and tabs. HTTP trims a value's outer whitespace, so a
# value that starts or ends with some would not arrive as it was given; bytes above
# 0x7E are read as Latin-1 by some receivers and as UTF-8 by others.
_HEADER_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?")
_LINE_BREAK_OR_NUL = re.compile(r"[\r\n\x00]")
_OURS = "the service sets it on every request"
_HOP_BY_HOP = "it governs the HTTP exchange itself, not what the receiver reads"
_RESERVED_HEADERS = {
    "host": _OURS,
    "user-agent": _OURS,
    "transfer-encoding": _OURS,
    "accept-encoding": _OURS,
    "expect": _HOP_BY_HOP,
    "trailer": _HOP_BY_HOP,
    "te": _HOP_BY_HOP,
    "connection": _HOP_BY_HOP,
    "keep-alive": _HOP_BY_HOP,
    "upgrade": _HOP_BY_HOP,
    "http2-settings": _HOP_BY_HOP,
    "cookie": "deliveries carry no cookies",
}
_RESERVED_HEADER_PREFIXES = {
    "webhook-": "webhook-* headers carry the signature (Standard Webhooks)",
    "content-": "content-* headers describe the body, which is the service's",
    "proxy-": "proxy-* headers are for proxies, not the receiver",
}
# As the API documents them.
RESERVED_HEADER_NAMES = (
    *_RESERVED_HEADERS,
    *(f"{prefix}*" for prefix in _RESERVED_HEADER_PREFIXES),
)

# Joiners that scripts (Persian, Indic) and emoji sequences need; every other format
# character is invisible or steers the text direction.
_JOINERS = frozenset("\u200c\u200d")
# Letters by category, shown as nothing at all.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")


def check_email(field: Field, value: str) -> list[UserError]:
    if not value.strip():
        return [UserError(field, "A notification email is required.", UserErrorCode.REQUIRED)]
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        return [
            UserError(
                field, "Not a valid email address, e.g. ops@example.com.", UserErrorCode.INVALID
            )
        ]
    return []


def check_api_key_params(
    field: Field, params: Sequence[tuple[str, str]], callback_url: str | None
) -> list[UserError]:
    """Names must be valid and unique, also against the URL's own query parameters."""
    errors: list[UserError] = []
    if len(params) > MAX_API_KEY_PARAMS:
        errors.append(
            UserError(
                field, f"At most {MAX_API_KEY_PARAMS} API key parameters.", UserErrorCode.INVALID
            )
        )
    existing = set()
    # A URL too broken to split (e.g. "https://[::1/x") is reported by the URL check.
    if callback_url:
        with contextlib.suppress(ValueError):
            existing = {name for name, _ in parse_qsl(urlsplit(callback_url).query)}
    seen: set[str] = set()
    for index, (name, value) in enumerate(params):
        where = (*field, index)
        if not _PARAM_NAME.fullmatch(name):
            errors.append(
                UserError(
                    (*where, "name"),
                    "A parameter name has 1 to 64 characters: letters, digits, '_', '.', '~', '-'.",
                    UserErrorCode.INVALID,
                )
            )
        elif name in seen or name in existing:
            errors.append(
                UserError(
                    (*where, "name"),
                    f"The parameter {name!r} is given twice.",
                    UserErrorCode.DUPLICATE,
                )
            )
        seen.add(name)
        if not value:
            errors.append(
                UserError(
                    (*where, "value"), "A parameter value is required.", UserErrorCode.REQUIRED
                )
            )
        elif len(value) > MAX_PARAM_VALUE:
            errors.append(
                UserError(
                    (*where, "value"),
                    f"A parameter value has at most {MAX_PARAM_VALUE} characters.",
                    UserErrorCode.TOO_LARGE,
                )
            )
    return errors


def reserved_header(name: str) -> str | None:
    """Why a custom header of this name is refused (case-insensitive), or None when a
    subscription may set it."""
    lowered = name.lower()
    if lowered in _RESERVED_HEADERS:
        return _RESERVED_HEADERS[lowered]
    prefixes = _RESERVED_HEADER_PREFIXES.items()
    return next((why for prefix, why in prefixes if lowered.startswith(prefix)), None)


def check_headers(field: Field, headers: Sequence[tuple[str, str]]) -> list[UserError]:
    """Names must be tokens we do not own, unique without regard to case; values visible
    ASCII. No message repeats a value: header values are secrets."""
    if len(headers) > MAX_HEADERS:
        # Only this: one error per entry of a list this long would say nothing more.
        return [UserError(field, f"At most {MAX_HEADERS} headers.", UserErrorCode.INVALID)]
    errors: list[UserError] = []
    seen: set[str] = set()
    for index, (name, value) in enumerate(headers):
        where = (*field, index)
        name_error = _header_name_error(name, seen)
        if name_error is not None:
            errors.append(UserError((*where, "name"), *name_error))
        seen.add(name.lower())
        value_error = _header_value_error(value)
        if value_error is not None:
            errors.append(UserError((*where, "value"), *value_error))
    return errors


def _header_name_error(name: str, seen: set[str]) -> tuple[str, UserErrorCode] | None:
    if not name:
        return "A header name is required.", UserErrorCode.REQUIRED
    if len(name) > MAX_HEADER_NAME:
        return f"A header name has at most {MAX_HEADER_NAME} characters.", UserErrorCode.TOO_LARGE
    if not _HEADER_NAME.fullmatch(name):
        return (
            "A header name is an HTTP token: letters, digits and !#$%&'*+-.^_`|~ only.",
            UserErrorCode.INVALID,
        )
    reason = reserved_header(name)
    if reason is not None:
        return f"The header {name!r} cannot be set: {reason}.", UserErrorCode.INVALID
    if name.lower() in seen:
        return (
            f"The header {name!r} is given twice (names ignore case).",
            UserErrorCode.DUPLICATE,
        )
    return None


def _header_value_error(value: str) -> tuple[str, UserErrorCode] | None:
    if not value:
        return "A header value is required.", UserErrorCode.REQUIRED
    if len(value) > MAX_HEADER_VALUE:
        return (
            f"A header value has at most {MAX_HEADER_VALUE} characters.",
            UserErrorCode.TOO_LARGE,
        )
    if _HEADER_VALUE.fullmatch(value):
        return None
    if _LINE_BREAK_OR_NUL.search(value):
        message = "A header value must not contain a line break (CR, LF) or NUL."
    elif value[0] in " \t" or value[-1] in " \t":
        message = "A header value must not start or end with a space or tab."
    else:
        message = (
            "A header value has printable ASCII characters only (spaces and tabs inside): "
            "no control characters, no letters beyond ASCII."
        )
    return message, UserErrorCode.INVALID


def check_delivery_rate(field: Field, value: int | None) -> list[UserError]:
    """A delivery rate is a whole number of deliveries per second in range; None is no
    limit."""
    if value is None:
        return []
    bounds = f"from {MIN_DELIVERIES_PER_SECOND} to {MAX_DELIVERIES_PER_SECOND}"
    if value < MIN_DELIVERIES_PER_SECOND:
        message = f"A delivery rate is {bounds} deliveries per second; null means no limit."
        return [UserError(field, message, UserErrorCode.INVALID)]
    if value > MAX_DELIVERIES_PER_SECOND:
        message = f"A delivery rate is {bounds} deliveries per second."
        return [UserError(field, message, UserErrorCode.TOO_LARGE)]
    return []


def check_text(field: Field, value: str | None, limit: int, noun: str) -> list[UserError]:
    if value is not None and len(value) > limit:
        return [
            UserError(field, f"The {noun} has at most {limit} characters.", UserErrorCode.TOO_LARGE)
        ]
    if value is not None and any(unicodedata.category(char) == "Cc" for char in value):
        return [
            UserError(
                field, f"The {noun} must not contain control characters.", UserErrorCode.INVALID
            )
        ]
    return check_visible(field, value, noun)


def check_visible(field: Field, value: str | None, noun: str) -> list[UserError]:
    """Refuse invisible and bidirectional-control characters (zero-width spaces, U+202E
    RIGHT-TO-LEFT OVERRIDE...): in a portal or an email they make text look like other
    text ("Trojan Source"). Linear in the length of ``value``."""
    hidden = next((char for char in value or "" if _is_hidden(char)), None)
    if hidden is None:
        return []
    return [
        UserError(
            field,
            f"The {noun} must not contain invisible or bidirectional-control characters "
            f"(found U+{ord(hidden):04X}).",
            UserErrorCode.INVALID,
        )
    ]


def _is_hidden(char: str) -> bool:
    if char.isascii():
        return False
    category = unicodedata.category(char)
    if category == "Cf":  # format: bidi controls, zero-width characters, tags, BOM
        return char not in _JOINERS
    # C1 controls, line and paragraph separators, blank letters
    return category in ("Cc", "Zl", "Zp") or char in _BLANK_LETTERS


def check_payload(
    field: Field, payload: Any, max_bytes: int
) -> tuple[bytes | None, list[UserError]]:
    """The payload must be a JSON object within the size cap; returns its compact encoding."""
    if not isinstance(payload, dict):
        return None, [UserError(field, "The payload must be a JSON object.", UserErrorCode.INVALID)]
    try:
        encoded = json.dumps(
            payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (TypeError, ValueError):
        return None, [UserError(field, "The payload is not valid JSON.", UserErrorCode.INVALID)]
    if len(encoded) > max_bytes:
        return None, [
            UserError(
                field,
                f"The payload is {len(encoded)} bytes; the limit is {max_bytes} bytes.",
                UserErrorCode.TOO_LARGE,
            )
        ]
    return encoded, []


# PostgreSQL's text and jsonb cannot hold U+0000, and no UTF-8 encodes an unpaired
# surrogate (JSON's "\ud800" decodes to one): such strings are refused before any query.
NUL = "\x00"


def unstorable(text: str) -> bool:
    """Whether ``text`` holds U+0000 or a code point that UTF-8 cannot encode."""
    if NUL in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def holds_nul(value: Any) -> bool:
    """Whether a JSON value (GraphQL variables, an operator's schema or sample) has U+0000
    or an unpaired surrogate in any string or object key.

    A walk with a stack of its own, not recursion: the depth of client JSON is bounded
    where it is parsed (``app.web.request_json``), but not every caller's value comes from
    there, and a few hundred levels of recursion used to end in a RecursionError.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if unstorable(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False
