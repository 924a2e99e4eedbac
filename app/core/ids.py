"""Identifiers: random, never sequential, and checked before they reach SQL."""

from __future__ import annotations

import uuid

from app.core.errors import InvalidArgument


def new_id() -> uuid.UUID:
    """A random (version 4) UUID for a new row."""
    return uuid.uuid4()


def parse_uuid(value: str, noun: str) -> uuid.UUID:
    """Read an id given by a client; a malformed one is a clear InvalidArgument."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument(f"{value!r} is not a valid {noun} id") from None


def try_uuid(value: str) -> uuid.UUID | None:
    """The UUID in ``value``, or None when it is not one (treated as not found)."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None
