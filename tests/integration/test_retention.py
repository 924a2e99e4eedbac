"""Retention purges old finished work in batches and keeps what is recent or unfinished."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from app.domain.events import NewEvent
from app.domain.retention import purge_old_data
from app.domain.subscriptions import NewSubscription
from app.store.services import Services
from tests.payloads import order_status_payload
from tests.service import Tenants, create_subscription_for, publish_event_with

OLD = datetime.now(UTC) - timedelta(days=45)


async def given_a_delivery(
    services: Services, company: str, status: str, finished_at: datetime
) -> tuple[uuid.UUID, uuid.UUID]:
    """A delivery in ``status`` finished at ``finished_at``, with one attempt."""
    await create_subscription_for(
        services,
        company,
        NewSubscription("ORDER_STATUS", f"http://127.0.0.1:9/{uuid.uuid4()}", "o@x.co"),
    )
    event = await publish_event_with(
        services, NewEvent(company, "ORDER_STATUS", order_status_payload(n=1))
    )
    async with services.db.transaction() as tx:
        cursor = await tx.connection.execute(
            "UPDATE deliveries SET status = %s, completed_at = %s, created_at = %s "
            "WHERE event_id = %s RETURNING id",
            (status, finished_at, finished_at, event.id),
        )
        row = await cursor.fetchone()
        assert row is not None
        await tx.connection.execute(
            "UPDATE events SET created_at = %s WHERE id = %s", (finished_at, event.id)
        )
        await tx.connection.execute(
            "INSERT INTO delivery_attempts (delivery_id, cycle, number, company_id, started_at,"
            " duration_ms, response_status, response_body, error, succeeded)"
            " VALUES (%s, 1, 1, %s, %s, 5, 500, 'body', 'HTTP 500', false)",
            (row[0], company, finished_at),
        )
    return row[0], event.id


async def attempt_details(services: Services, delivery_id: uuid.UUID) -> tuple[object, object]:
    async with services.db.autocommit() as session:
        cursor = await session.connection.execute(
            "SELECT response_body, error FROM delivery_attempts WHERE delivery_id = %s",
            (delivery_id,),
        )
        row = await cursor.fetchone()
    assert row is not None
    return row[0], row[1]


async def event_body(services: Services, event_id: uuid.UUID) -> object:
    async with services.db.autocommit() as session:
        cursor = await session.connection.execute(
            "SELECT body FROM events WHERE id = %s", (event_id,)
        )
        row = await cursor.fetchone()
    assert row is not None
    return row[0]


async def test_old_succeeded_work_is_purged_and_recent_or_failed_work_kept(
    services: Services, tenants: Tenants
) -> None:
    old_ok = await given_a_delivery(services, tenants.a, "SUCCEEDED", OLD)
    old_failed = await given_a_delivery(services, tenants.a, "FAILED", OLD)
    recent_ok = await given_a_delivery(services, tenants.b, "SUCCEEDED", datetime.now(UTC))
    open_one = await given_a_delivery(services, tenants.b, "RETRYING", OLD)

    report = await purge_old_data(services.db, services.settings.retention_days, batch_size=1)

    assert await attempt_details(services, old_ok[0]) == (None, None)
    assert await event_body(services, old_ok[1]) is None
    for kept in (old_failed, recent_ok, open_one):
        assert await attempt_details(services, kept[0]) == ("body", "HTTP 500")
        assert await event_body(services, kept[1]) is not None
    assert (report.attempts, report.event_bodies) == (1, 1)


async def job_statuses(services: Services) -> dict[int, str]:
    async with services.db.autocommit() as session:
        cursor = await session.connection.execute(
            "SELECT id, status::text FROM procrastinate_jobs ORDER BY id"
        )
        return dict(await cursor.fetchall())


async def test_finished_jobs_are_deleted_after_the_retention_period(
    services: Services, tenants: Tenants
) -> None:
    for company in (tenants.a, tenants.b):
        await given_a_delivery(services, company, "PENDING", datetime.now(UTC))
    old_failed, recent_succeeded, *waiting = await job_statuses(services)
    async with services.db.transaction() as tx:
        await tx.connection.execute(
            "UPDATE procrastinate_jobs SET status = 'failed' WHERE id = %s", (old_failed,)
        )
        await tx.connection.execute(
            "UPDATE procrastinate_jobs SET status = 'succeeded' WHERE id = %s",
            (recent_succeeded,),
        )
        await tx.connection.execute(
            "UPDATE procrastinate_events SET at = %s WHERE job_id = %s", (OLD, old_failed)
        )

    report = await purge_old_data(services.db, services.settings.retention_days)

    assert report.jobs == 1
    assert await job_statuses(services) == {
        recent_succeeded: "succeeded",
        **dict.fromkeys(waiting, "todo"),
    }
