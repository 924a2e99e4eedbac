"""Delivery updates: what a notification announces, and the attempts a state counts."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from app.domain.deliveries import Attempt, Delivery, as_changed, attempts_as_of
from app.store.delivery_updates import DeliveryState, parse_notification

DELIVERY_ID = uuid.uuid4()
CREATED = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)


def delivery(**changes: Any) -> Delivery:
    values: dict[str, Any] = {
        "id": DELIVERY_ID,
        "webhook_id": "msg_1",
        "company_id": "acme",
        "event_id": uuid.uuid4(),
        "subscription_id": uuid.uuid4(),
        "webhook_key": "ORDER_STATUS",
        "subject": "ord_1",
        "status": "SUCCEEDED",
        "cycle": 1,
        "attempt_count": 3,
        "max_attempts": 10,
        "next_attempt_at": None,
        "last_attempt_at": CREATED,
        "last_response_status": 200,
        "created_at": CREATED,
        "completed_at": CREATED,
    }
    return Delivery(**{**values, **changes})


def attempt(cycle: int, number: int) -> Attempt:
    return Attempt(DELIVERY_ID, cycle, number, CREATED, 1, 500, None, None, False)


def notification(**changes: Any) -> str:
    payload: dict[str, Any] = {
        "id": str(DELIVERY_ID),
        "company_id": "acme",
        "subscription_id": str(uuid.uuid4()),
        "subject": "ord_1",
        "status": "RETRYING",
        "cycle": 1,
        "attempt_count": 1,
        "next_attempt_at": "2026-12-06T21:06:00.123456+01:00",
        "last_attempt_at": "2026-12-06T21:00:00+01:00",
        "last_response_status": 500,
        "completed_at": None,
    }
    return json.dumps({**payload, **changes})


def test_a_notification_carries_the_state_the_change_left() -> None:
    change = parse_notification(notification())

    assert change is not None
    assert change.state == DeliveryState(
        status="RETRYING",
        cycle=1,
        attempt_count=1,
        next_attempt_at=datetime(2026, 12, 6, 20, 6, 0, 123456, tzinfo=UTC),
        last_attempt_at=datetime(2026, 12, 6, 20, 0, tzinfo=UTC),
        last_response_status=500,
        completed_at=None,
    )


def test_a_notification_of_the_older_trigger_has_no_state() -> None:
    old = {"id": str(DELIVERY_ID), "company_id": "acme", "subscription_id": str(uuid.uuid4())}

    change = parse_notification(json.dumps({**old, "subject": None, "status": "PENDING"}))

    assert change is not None and change.state is None and change.status == "PENDING"


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"status": "LOST"}, id="unknown-status"),
        pytest.param({"attempt_count": "1"}, id="count-as-text"),
        pytest.param({"attempt_count": True}, id="count-as-boolean"),
        pytest.param({"next_attempt_at": "soon"}, id="not-a-time"),
        pytest.param({"next_attempt_at": "2026-12-06T21:06:00"}, id="time-without-zone"),
        pytest.param({"last_attempt_at": 1765000000}, id="time-as-number"),
        pytest.param({"last_response_status": 5.5}, id="status-code-as-float"),
    ],
)
def test_a_malformed_state_is_ignored(changes: dict[str, Any]) -> None:
    assert parse_notification(notification(**changes)) is None


def test_the_announced_state_replaces_the_later_row_in_its_time_zone() -> None:
    # Given a row loaded after it succeeded, in the API connection's time zone (+02:00)
    zone = timezone(timedelta(hours=2))
    loaded = delivery(created_at=CREATED.astimezone(zone))
    change = parse_notification(notification())
    assert change is not None and change.state is not None

    # When the state of the earlier change is applied
    shown = as_changed(loaded, change.state)

    # Then it is the delivery as that change left it
    assert (shown.status, shown.attempt_count, shown.completed_at) == ("RETRYING", 1, None)
    assert shown.last_response_status == 500
    assert shown.next_attempt_at == datetime(2026, 12, 6, 20, 6, 0, 123456, tzinfo=UTC)
    assert (
        shown.next_attempt_at is not None
        and shown.next_attempt_at.utcoffset() == zone.utcoffset(None)
    )
    assert (shown.id, shown.webhook_id, shown.event_id) == (
        loaded.id,
        loaded.webhook_id,
        loaded.event_id,
    )


def test_a_state_counts_earlier_cycles_and_its_own_attempts_so_far() -> None:
    made = [attempt(1, 1), attempt(1, 2), attempt(2, 1), attempt(2, 2), attempt(2, 3)]

    assert attempts_as_of(delivery(cycle=2, attempt_count=1), made) == made[:3]
    assert attempts_as_of(delivery(cycle=2, attempt_count=0), made) == made[:2]
    assert attempts_as_of(delivery(cycle=1, attempt_count=0), made) == []
    assert attempts_as_of(delivery(cycle=2, attempt_count=3), made) == made
