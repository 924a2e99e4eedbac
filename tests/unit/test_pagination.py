"""Keyset pagination: opaque cursors that round-trip, clear errors, pages capped at 100."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.core.errors import InvalidArgument
from app.core.pagination import (
    MAX_PAGE_SIZE,
    PageRequest,
    decode_cursor,
    encode_cursor,
    make_page,
    page_request,
)

MOMENT = datetime(2026, 11, 28, 6, 0, 0, 123456, tzinfo=UTC)
ROW_ID = uuid.UUID("5f0c6a4e-8a5e-4f7e-9a57-3b1f0c2d9e11")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_a_cursor_round_trips_its_timestamp_and_id() -> None:
    # Given a row's (created_at, id)
    # When it is encoded and decoded again
    cursor = encode_cursor(MOMENT, ROW_ID)

    # Then the same values come back, to the microsecond
    assert decode_cursor(cursor) == (MOMENT, ROW_ID)


def test_a_cursor_keeps_a_non_utc_offset() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-7)))

    decoded, _ = decode_cursor(encode_cursor(moment, ROW_ID))

    assert decoded == moment
    assert decoded.utcoffset() == timedelta(hours=-7)


def test_a_cursor_is_url_safe_and_unpadded() -> None:
    cursor = encode_cursor(MOMENT, ROW_ID)

    assert "=" not in cursor
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("", id="empty"),
        pytest.param("not a cursor!", id="not-base64"),
        pytest.param(_b64("hello"), id="no-separator"),
        pytest.param(_b64(f"yesterday|{ROW_ID}"), id="bad-timestamp"),
        pytest.param(_b64(f"{MOMENT.isoformat()}|not-a-uuid"), id="bad-uuid"),
        pytest.param(_b64(f"2026-11-28T06:00:00|{ROW_ID}"), id="naive-timestamp"),
        pytest.param(base64.urlsafe_b64encode(b"\xff\xfe|x").decode().rstrip("="), id="not-utf8"),
    ],
)
def test_a_malformed_cursor_is_a_clear_invalid_argument(cursor: str) -> None:
    # When a client sends a cursor we never issued
    with pytest.raises(InvalidArgument) as raised:
        decode_cursor(cursor)

    # Then the message names it and says where cursors come from
    message = str(raised.value)
    assert repr(cursor) in message
    assert "not a valid cursor" in message
    assert "endCursor" in message


def test_page_request_defaults_to_50_rows_from_the_start() -> None:
    assert page_request(None, None) == PageRequest(limit=50)


def test_page_request_caps_first_at_100() -> None:
    assert MAX_PAGE_SIZE == 100
    assert page_request(100, None).limit == 100
    assert page_request(101, None).limit == 100
    assert page_request(10_000, None).limit == 100


@pytest.mark.parametrize("first", [0, -1, -100])
def test_page_request_refuses_first_below_1(first: int) -> None:
    with pytest.raises(InvalidArgument, match="`first` must be at least 1"):
        page_request(first, None)


def test_page_request_starts_after_the_cursor() -> None:
    request = page_request(10, encode_cursor(MOMENT, ROW_ID))

    assert request == PageRequest(limit=10, after_created_at=MOMENT, after_id=ROW_ID)


def test_page_request_refuses_a_malformed_cursor() -> None:
    with pytest.raises(InvalidArgument, match="not a valid cursor"):
        page_request(10, "garbage")


def test_query_arguments_ask_for_one_extra_row() -> None:
    # The extra row tells whether a next page exists without a COUNT query.
    request = PageRequest(limit=20, after_created_at=MOMENT, after_id=ROW_ID)

    assert request.query_arguments() == {
        "limit": 21,
        "after_created_at": MOMENT,
        "after_id": ROW_ID,
    }


def _rows(count: int) -> list[dict[str, object]]:
    return [
        {"id": uuid.UUID(int=index + 1), "created_at": MOMENT - timedelta(seconds=index)}
        for index in range(count)
    ]


def test_make_page_with_the_extra_row_has_a_next_page() -> None:
    # Given the query returned limit + 1 rows
    request = PageRequest(limit=3)
    rows = _rows(4)

    # When the page is made
    page = make_page(rows, request, lambda row: row["id"])

    # Then it shows `limit` rows, says more exist, and ends at the last shown row
    assert page.items == [uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)]
    assert page.has_next_page is True
    assert page.end_cursor is not None
    assert decode_cursor(page.end_cursor) == (rows[2]["created_at"], rows[2]["id"])
    assert [decode_cursor(cursor)[1] for cursor in page.cursors] == page.items


def test_make_page_without_the_extra_row_is_the_last_page() -> None:
    page = make_page(_rows(3), PageRequest(limit=3), lambda row: row["id"])

    assert len(page.items) == 3
    assert page.has_next_page is False


def test_an_empty_page_has_no_end_cursor() -> None:
    page = make_page([], PageRequest(limit=3), lambda row: row)

    assert page.items == []
    assert page.has_next_page is False
    assert page.end_cursor is None
