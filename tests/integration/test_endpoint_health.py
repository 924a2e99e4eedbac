"""Endpoints that only fail for the configured period are deactivated, with an email."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.delivery.endpoint_health import deactivate_failing_subscriptions
from app.delivery.worker import run_worker
from app.domain.events import NewEvent
from app.domain.subscriptions import NewSubscription, get_subscription
from app.store.database import WORKER_SCOPE, scoped
from app.store.services import Services, open_services
from tests.payloads import order_status_payload
from tests.service import (
    Tenants,
    company_viewer,
    create_subscription_for,
    make_settings,
    publish_event_with,
)
from tests.smtp import SmtpTestServer

PERIOD = 3600.0


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture
async def health_services(
    database_url: str, tmp_path: Path, smtp: SmtpTestServer
) -> AsyncIterator[Services]:
    settings = make_settings(
        database_url, tmp_path, smtp_url=smtp.url, disable_after_failing_seconds=PERIOD
    )
    async with open_services(settings) as services:
        yield services


async def given_deliveries(
    services: Services, company: str, outcomes: list[tuple[str, timedelta]]
) -> uuid.UUID:
    """A subscription with deliveries finished with each (status, age)."""
    subscription, _ = await create_subscription_for(
        services, company, NewSubscription("ORDER_STATUS", "http://127.0.0.1:9/", "ops@x.co")
    )
    for status, age in outcomes:
        event = await publish_event_with(
            services, NewEvent(company, "ORDER_STATUS", order_status_payload(n=1))
        )
        async with services.db.transaction() as tx:
            await tx.connection.execute(
                "UPDATE deliveries SET status = %s, completed_at = %s WHERE event_id = %s",
                (status, datetime.now(UTC) - age, event.id),
            )
            await tx.connection.execute("DELETE FROM procrastinate_jobs")
    return subscription.id


async def test_a_subscription_failing_for_the_whole_period_is_deactivated_and_told(
    health_services: Services, tenants: Tenants, smtp: SmtpTestServer
) -> None:
    services = health_services
    failing = await given_deliveries(
        services,
        tenants.a,
        [("FAILED", timedelta(hours=2)), ("FAILED", timedelta(minutes=5))],
    )
    pending = await publish_event_with(
        services, NewEvent(tenants.a, "ORDER_STATUS", order_status_payload(n=2))
    )

    with scoped(WORKER_SCOPE):
        assert await deactivate_failing_subscriptions(services) == 1

    subscription = await get_subscription(services.db, company_viewer(tenants.a), str(failing))
    assert subscription is not None and not subscription.is_active
    [delivery] = await services.db.fetch_all(
        "deliveries_of_events", event_ids=[pending.id], company_id=None
    )
    assert delivery["status"] == "CANCELLED"

    worker = asyncio.create_task(run_worker(services, install_signal_handlers=False))
    try:
        await smtp.wait_for_async(1, timeout=10)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    [mail] = smtp.messages
    body = mail.message.get_body(("plain",))
    assert body is not None
    assert "deactivated" in body.get_content()
    assert mail.rcpt_tos == ("ops@x.co",)


@pytest.mark.parametrize(
    "outcomes",
    [
        pytest.param([("FAILED", timedelta(minutes=30))], id="failing-for-less-than-the-period"),
        pytest.param(
            [
                ("FAILED", timedelta(hours=3)),
                ("SUCCEEDED", timedelta(minutes=20)),
                ("FAILED", timedelta(minutes=10)),
            ],
            id="succeeded-within-the-period",
        ),
        pytest.param([("FAILED", timedelta(days=3))], id="no-recent-failure"),
    ],
)
async def test_a_subscription_not_failing_for_the_whole_period_stays_active(
    health_services: Services, tenants: Tenants, outcomes: list[tuple[str, timedelta]]
) -> None:
    subscription_id = await given_deliveries(health_services, tenants.a, outcomes)
    with scoped(WORKER_SCOPE):
        assert await deactivate_failing_subscriptions(health_services) == 0
    subscription = await get_subscription(
        health_services.db, company_viewer(tenants.a), str(subscription_id)
    )
    assert subscription is not None and subscription.is_active
