"""The outgoing delivery: a ``load_attempt_contexts`` row, typed once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from app.delivery.outgoing import (
    Endpoint,
    OutgoingDelivery,
    SealedHeader,
    SealedParam,
    outgoing_from_row,
)

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
DELIVERY, EVENT, SUBSCRIPTION = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def context_row(**changes: Any) -> dict[str, Any]:
    """A row as ``load_attempt_contexts`` returns it (the body as psycopg may hand it over)."""
    return {
        "loaded_at": NOW,
        "id": DELIVERY,
        "webhook_id": "msg_2Lb",
        "company_id": "acme",
        "event_id": EVENT,
        "subscription_id": SUBSCRIPTION,
        "webhook_key": "ORDER_STATUS",
        "subject": "332818",
        "status": "RETRYING",
        "cycle": 2,
        "attempt_count": 3,
        "max_attempts": 10,
        "body": memoryview(b'{"a":1}'),
        "callback_url": "https://h.example/in",
        "api_key_params": [{"name": "token", "value": "sealed-token", "hint": "••••"}],
        "headers": [{"name": "Authorization", "value": "sealed-bearer", "hint": "••••"}],
        "signing_secret": "sealed-current",
        "previous_signing_secret": "sealed-previous",
        "previous_secret_expires_at": NOW,
        "is_active": True,
        "deleted_at": None,
        "max_deliveries_per_second": 25,
        **changes,
    }


def test_the_row_becomes_the_delivery_and_its_endpoint_secrets_still_sealed() -> None:
    assert outgoing_from_row(context_row()) == OutgoingDelivery(
        id=DELIVERY,
        webhook_id="msg_2Lb",
        company_id="acme",
        event_id=EVENT,
        webhook_key="ORDER_STATUS",
        subject="332818",
        status="RETRYING",
        cycle=2,
        attempt_count=3,
        max_attempts=10,
        body=b'{"a":1}',
        endpoint=Endpoint(
            subscription_id=SUBSCRIPTION,
            callback_url="https://h.example/in",
            api_key_params=(SealedParam("token", "sealed-token"),),
            signing_secret="sealed-current",
            previous_signing_secret="sealed-previous",
            previous_secret_expires_at=NOW,
            is_active=True,
            deleted_at=None,
            headers=(SealedHeader("Authorization", "sealed-bearer"),),
            max_deliveries_per_second=25,
        ),
        loaded_at=NOW,
    )


@pytest.mark.parametrize(
    ("is_active", "deleted_at", "is_open"),
    [(True, None, True), (False, None, False), (True, NOW, False), (False, NOW, False)],
    ids=["active", "deactivated", "deleted", "deactivated and deleted"],
)
def test_only_an_active_undeleted_subscription_takes_deliveries(
    is_active: bool, deleted_at: datetime | None, is_open: bool
) -> None:
    row = context_row(is_active=is_active, deleted_at=deleted_at)

    assert outgoing_from_row(row).endpoint.is_open is is_open
