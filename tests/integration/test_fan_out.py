"""Fan-out: deliveries and their first jobs go in with one statement, and those jobs are
exactly the ones Procrastinate's own batch defer (``defer_attempts``) makes of the same
``AttemptJob``s."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.domain.events import NewEvent
from app.domain.subscriptions import NewSubscription
from app.store.database import Row, Session
from app.store.queue import AttemptJob, FanOutMismatch, defer_attempts
from app.store.services import Services
from tests.payloads import order_status_payload
from tests.service import Tenants, create_subscription_for, publish_event_with

JOB_COLUMNS = (
    "queue_name, task_name, priority, lock, queueing_lock, args, status, scheduled_at,"
    " attempts, abort_requested, worker_id"
)


async def rows(services: Services, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    async with services.db.pool.connection() as connection:
        cursor = await connection.execute(statement, params)
        return list(await cursor.fetchall())


async def subscribe(services: Services, company: str, count: int) -> list[uuid.UUID]:
    created = []
    for index in range(count):
        subscription, _ = await create_subscription_for(
            services,
            company,
            NewSubscription("ORDER_STATUS", f"http://127.0.0.1:9/{index}", "ops@example.com"),
        )
        created.append(subscription.id)
    return created


async def test_publishing_queues_the_jobs_procrastinates_own_defer_makes(
    services: Services, tenants: Tenants
) -> None:
    # Given three subscriptions, and an event published to them
    await subscribe(services, tenants.a, 3)
    event = await publish_event_with(
        services, NewEvent(tenants.a, "ORDER_STATUS", order_status_payload(n=1))
    )
    published = await rows(
        services,
        f"SELECT j.id, {JOB_COLUMNS} FROM procrastinate_jobs j ORDER BY j.id",
    )

    # When the same first attempts are queued again through Procrastinate's batch defer
    deliveries = await rows(
        services, "SELECT id, cycle FROM deliveries WHERE event_id = %s", event.id
    )
    async with services.db.transaction() as tx:
        await defer_attempts(
            services.queue, tx, [AttemptJob(id_, cycle, 1) for id_, cycle in deliveries]
        )
    deferred = await rows(
        services,
        f"SELECT j.id, {JOB_COLUMNS} FROM procrastinate_jobs j WHERE j.id > %s ORDER BY j.id",
        published[-1][0],
    )

    # Then both sets of jobs are the same, column by column, one per delivery
    assert len(published) == 3
    assert sorted(job[1:] for job in published) == sorted(job[1:] for job in deferred)
    assert {job[4] for job in published} == {str(id_) for id_, _ in deliveries}
    # and each was announced by Procrastinate's triggers as deferred, once
    events = await rows(
        services,
        "SELECT job_id, type::text FROM procrastinate_events WHERE job_id = ANY(%s)",
        [job[0] for job in published],
    )
    assert sorted(events) == sorted((job[0], "deferred") for job in published)


async def test_jobs_are_queued_in_the_order_of_the_subscriptions(
    services: Services, tenants: Tenants
) -> None:
    # Given subscriptions created one after another
    subscriptions = await subscribe(services, tenants.a, 5)

    # When an event is published to them
    event = await publish_event_with(
        services, NewEvent(tenants.a, "ORDER_STATUS", order_status_payload(n=1))
    )

    # Then the workers take the deliveries in that order (job ids ascending)
    queued = await rows(
        services,
        "SELECT d.subscription_id FROM procrastinate_jobs j"
        " JOIN deliveries d ON d.id::text = j.lock WHERE d.event_id = %s ORDER BY j.id",
        event.id,
    )
    assert [subscription for (subscription,) in queued] == subscriptions


async def test_a_test_event_queues_one_job_for_its_subscription_only(
    services: Services, tenants: Tenants
) -> None:
    # Given three subscriptions
    first, *_ = await subscribe(services, tenants.a, 3)

    # When one of them is sent a test event
    event = await publish_event_with(
        services,
        NewEvent(tenants.a, "ORDER_STATUS", order_status_payload(n=1)),
        is_test=True,
        only_subscription=first,
    )

    # Then one delivery and one job exist, both for that subscription
    queued = await rows(
        services,
        "SELECT d.subscription_id, j.args FROM procrastinate_jobs j"
        " JOIN deliveries d ON d.id::text = j.lock WHERE d.event_id = %s",
        event.id,
    )
    assert len(queued) == 1
    assert queued[0][0] == first
    assert queued[0][1]["attempt"] == 1


async def test_a_fan_out_whose_jobs_and_deliveries_differ_writes_nothing(
    services: Services, tenants: Tenants, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two subscriptions, and a fan-out that reports one job fewer than deliveries
    await subscribe(services, tenants.a, 2)
    fetch_one = Session.fetch_one

    async def one_job_short(self: Session, query: str, **arguments: Any) -> Row | None:
        row = await fetch_one(self, query, **arguments)
        if query == "fan_out_event" and row is not None:
            row = {**row, "jobs": row["jobs"] - 1}
        return row

    monkeypatch.setattr(Session, "fetch_one", one_job_short)

    # When an event is published to them, then publishing fails
    with pytest.raises(FanOutMismatch, match="queued 1 jobs for 2 deliveries"):
        await publish_event_with(
            services, NewEvent(tenants.a, "ORDER_STATUS", order_status_payload(n=1))
        )

    # and nothing of it was written: no event, no delivery, no job
    assert await rows(services, "SELECT id FROM events") == []
    assert await rows(services, "SELECT id FROM deliveries") == []
    assert await rows(services, "SELECT id FROM procrastinate_jobs") == []
