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
