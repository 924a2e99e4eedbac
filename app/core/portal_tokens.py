"""Portal secrets: link tokens, session ids and the CSRF token derived from a session.

A link token and a session id are each 32 random bytes in base64url (43 characters),
stored only as their SHA-256, as API keys are. The CSRF token is derived from the
session id (base64url of HMAC-SHA256 keyed by it, over ``csrf``), so nothing more is
stored, and only the holder of the session id can compute it: a page of another origin
can make the browser send the cookie, never read the page that holds the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from enum import StrEnum

SECRET_LENGTH = 43  # base64url of 32 bytes, unpadded
_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")


class PortalAccess(StrEnum):
    """What a portal session may do."""

    READ_ONLY = "READ_ONLY"
    FULL = "FULL"


def new_secret() -> str:
    """A fresh link token or session id."""
    return secrets.token_urlsafe(32)


def well_formed(presented: str) -> bool:
    """Whether ``presented`` can be a token or session id; the length is checked first, so
    garbage of any size costs nothing."""
    return len(presented) == SECRET_LENGTH and _SECRET_PATTERN.fullmatch(presented) is not None


def secret_hash(secret: str) -> bytes:
    """What the database keeps of a token or session id."""
    return hashlib.sha256(secret.encode()).digest()


def csrf_token(session_id: str) -> str:
    """The CSRF token of a session, as the page carries it."""
    digest = hmac.new(session_id.encode(), b"csrf", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def csrf_matches(session_id: str, presented: str | None) -> bool:
    """Whether ``presented`` is the session's CSRF token, compared in constant time."""
    if presented is None or len(presented) != SECRET_LENGTH:
        return False
    return hmac.compare_digest(
        csrf_token(session_id).encode(), presented.encode("utf-8", "replace")
    )
