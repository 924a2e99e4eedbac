"""Identifiers: random, never sequential, and checked before they reach SQL."""

from __future__ import annotations

import uuid


def new_id() -> uuid.UUID:
    """A random (version 4) UUID for a new row."""
    return uuid.uuid4()


def try_uuid(value: str) -> uuid.UUID | None:
    """The UUID in ``value``, or None when it is not one (treated as not found)."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None
