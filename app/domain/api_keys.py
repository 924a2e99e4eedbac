"""API keys: how callers authenticate.

A key is ``pwk_<8 hex>_<43 chars of base64url>``: 32 random bytes of secret behind a short
prefix that identifies the key in listings and logs. Only a SHA-256 hash is stored (the
secret has 256 bits of entropy, so a slow hash would add nothing); the key is shown once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from app.core.errors import WebhooksError
from app.core.viewer import Role, Viewer
from app.store.database import Database, Row

_KEY_PATTERN = re.compile(r"^(pwk_[0-9a-f]{8})_[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True)
class CreatedKey:
    """A new key; ``key`` is the only copy of the secret that will ever exist."""

    key: str
    prefix: str
    role: Role
    company_id: str | None


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: never its secret or hash."""

    prefix: str
    role: Role
    company_id: str | None
    created_at: datetime
    revoked_at: datetime | None


def generate_key() -> tuple[str, str]:
    """A fresh ``(key, prefix)``."""
    prefix = "pwk_" + secrets.token_hex(4)
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class AmbiguousCredentials(WebhooksError, ValueError):
    """More than one ``Authorization`` value came with one request or connection_init.

    Refused rather than picking one: two readers of the same request (the rate limit and
    authentication used to be two) could pick differently.
    """


def presented_key(authorization: Sequence[str]) -> str | None:
    """The key in a request's ``Authorization`` values (``Bearer <key>``), else None.

    The one parser of credentials: HTTP headers and websocket ``connection_init``
    payloads both come through here. Raises :class:`AmbiguousCredentials` for more than one
    value. A value that is not a bearer credential presents no key.
    """
    if len(authorization) > 1:
        raise AmbiguousCredentials("send one Authorization value, not several")
    if not authorization:
        return None
    scheme, _, key = authorization[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


def connection_authorization(params: Mapping[str, object]) -> list[str]:
    """The ``Authorization`` values of a ``connection_init`` payload, the name in any case.

    Header names are case-insensitive and GraphQL clients copy them as they are written
    (``Authorization``); a value that is not text presents no key.
    """
    return [
        value if isinstance(value, str) else ""
        for name, value in params.items()
        if isinstance(name, str) and name.lower() == "authorization"
    ]


def prefix_of(key: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    match = _KEY_PATTERN.match(key)
    return match.group(1) if match else None


async def create_key(db: Database, role: Role, company_id: str | None) -> CreatedKey:
    """Create a key for a company (COMPANY) or for the order system (PUBLISHER)."""
    if (role == "COMPANY") != (company_id is not None):
        raise ValueError("a COMPANY key needs a company; a PUBLISHER key must not have one")
    key, prefix = generate_key()
    await db.execute(
        "insert_api_key", prefix=prefix, key_hash=hash_key(key), role=role, company_id=company_id
    )
    return CreatedKey(key=key, prefix=prefix, role=role, company_id=company_id)


async def authenticate(db: Database, presented: str) -> Viewer | None:
    """The viewer a presented key stands for; None when it is unknown, malformed or revoked."""
    prefix = prefix_of(presented)
    if prefix is None:
        return None
    row = await db.fetch_one("get_api_key_by_prefix", prefix=prefix)
    if row is None or row["revoked_at"] is not None:
        return None
    if not hmac.compare_digest(bytes(row["key_hash"]), hash_key(presented)):
        return None
    return Viewer(
        role=row["role"],
        key_prefix=prefix,
        company_id=row["company_id"],
        company_name=row["company_name"],
    )


async def list_keys(db: Database, company_id: str | None = None) -> list[KeyInfo]:
    rows = await db.fetch_all("list_api_keys", company_id=company_id)
    return [_key_info(row) for row in rows]


async def revoke_key(db: Database, prefix: str) -> KeyInfo | None:
    """Revoke a key by prefix; None when no such key exists."""
    row = await db.fetch_one("revoke_api_key", prefix=prefix)
    return _key_info(row) if row else None


def _key_info(row: Row) -> KeyInfo:
    return KeyInfo(
        prefix=row["prefix"],
        role=row["role"],
        company_id=row["company_id"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
