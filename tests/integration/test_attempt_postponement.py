"""An attempt over its subscription's in-flight cap is put off, each time twice as long."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from app.core.settings import Settings
from app.delivery.attempts import make_attempt
from app.delivery.fairness import InFlight
from app.delivery.transport import Transport
from app.domain.events import NewEvent
from app.domain.subscriptions import NewSubscription
from app.store.database import WORKER_SCOPE, scoped
from app.store.services import Services
from tests.payloads import order_status_payload
from tests.service import Tenants, create_subscription_for, make_settings, publish_event_with


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # The request timeout is the ceiling of the postponements.
    return make_settings(database_url, tmp_path, request_timeout_seconds=10.0)


async def jobs_of(services: Services, delivery_id: str) -> list[dict[str, Any]]:
    async with services.db.pool.connection() as connection:
        cursor = await connection.execute(
            "SELECT args, scheduled_at, priority, now() AS now FROM procrastinate_jobs"
            " WHERE lock = %s ORDER BY id",
            (delivery_id,),
        )
        names = [column.name for column in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]


async def a_delivery_whose_subscription_is_at_its_cap(
    services: Services, tenants: Tenants
) -> tuple[str, InFlight]:
    subscription, _secret = await create_subscription_for(
        services,
        tenants.a,
        NewSubscription("ORDER_STATUS", "http://127.0.0.1:9/hook", "ops@example.com"),
    )
    event = await publish_event_with(
        services, NewEvent(tenants.a, "ORDER_STATUS", order_status_payload(n=1))
    )
    [delivery] = await services.db.fetch_all(
        "deliveries_of_events", event_ids=[event.id], company_id=None
    )
    in_flight = InFlight(cap=1)
    assert in_flight.try_acquire(subscription.id)
    return str(delivery["id"]), in_flight


@pytest.mark.parametrize(("postponed", "seconds"), [(0, 1.0), (2, 4.0), (9, 10.0)])
async def test_a_put_off_attempt_comes_back_later_each_time(
    services: Services, tenants: Tenants, postponed: int, seconds: float
) -> None:
    # given a delivery whose subscription already has its share of this worker's slots
    delivery_id, in_flight = await a_delivery_whose_subscription_is_at_its_cap(services, tenants)

    # when the worker takes its job, already put off `postponed` times
    async with Transport(timeout_seconds=2) as transport:
        with scoped(WORKER_SCOPE):
            result = await make_attempt(
                services, transport, delivery_id, 1, 1, in_flight=in_flight, postponed=postponed
            )

    # then nothing is sent and the same attempt is queued again, later, and counted
    assert result == "postponed"
    [first, again] = await jobs_of(services, delivery_id)
    assert again["args"] == {**first["args"], "postponed": postponed + 1}
    assert again["priority"] < first["priority"]
    delay: datetime = again["scheduled_at"] - again["now"]
    assert seconds * 0.89 <= delay.total_seconds() <= seconds * 1.11
