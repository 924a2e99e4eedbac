"""Keyset pagination: newest first, opaque cursors, pages capped at 100.

A cursor encodes the (created_at, id) of the last row of a page; the next page asks for
rows strictly before it, which an index on (…, created_at DESC, id DESC) serves directly
however deep the page.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from app.core.errors import InvalidArgument

MAX_PAGE_SIZE = 100
T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    """A validated page request: how many rows, and where to start."""

    limit: int
    after_created_at: datetime | None = None
    after_id: uuid.UUID | None = None

    def query_arguments(self) -> dict[str, Any]:
        """Arguments for a keyset query; asks for one extra row to learn if more exist."""
        return {
            "limit": self.limit + 1,
            "after_created_at": self.after_created_at,
            "after_id": self.after_id,
        }


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next_page: bool

    @property
    def end_cursor(self) -> str | None:
        return self.cursors[-1] if self.cursors else None


def page_request(first: int | None, after: str | None) -> PageRequest:
    """Check ``first`` and ``after``; ``first`` above the cap is lowered to it."""
    if first is None:
        first = 50
    if first < 1:
        raise InvalidArgument("`first` must be at least 1")
    limit = min(first, MAX_PAGE_SIZE)
    if after is None:
        return PageRequest(limit)
    created_at, row_id = decode_cursor(after)
    return PageRequest(limit, created_at, row_id)


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
        created, _, row_id = text.partition("|")
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        return created_at, uuid.UUID(row_id)
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidArgument(
            f"{cursor!r} is not a valid cursor: pass an endCursor from a previous page"
        ) from None


def make_page(
    rows: Sequence[dict[str, Any]], request: PageRequest, convert: Callable[[dict[str, Any]], T]
) -> Page[T]:
    """Build a page from rows fetched with ``request.query_arguments()``."""
    visible = list(rows[: request.limit])
    return Page(
        items=[convert(row) for row in visible],
        cursors=[encode_cursor(row["created_at"], row["id"]) for row in visible],
        has_next_page=len(rows) > request.limit,
    )
