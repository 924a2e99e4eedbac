"""Concurrent publishes with one idempotency key, and a retention purge under load.

A real ``webhooks serve`` and ``webhooks worker``, real receivers, and a PostgreSQL owned
by this module.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from app.domain.retention import purge_old_data
from app.store.services import open_services
from tests.acceptance.processes import PUBLISH_EVENT, seed_tenants, wait_until
from tests.faults.harness import (  # noqa: F401 -- the fixtures
    Stack,
    owned_postgres_fixture,
    stack_fixture,
    summary,
)
from tests.payloads import order_status_payload
from tests.receivers import Receiver


def test_concurrent_publishes_with_one_idempotency_key_make_one_event(stack: Stack) -> None:
    # given two subscriptions of one company, the API and a worker
    calls = 20
    tenants = seed_tenants(stack.url)
    with Receiver() as receiver:
        first = stack.subscribe(tenants.a, receiver.url_for("/one"))
        second = stack.subscribe(tenants.a, receiver.url_for("/two"))
        api_process = stack.serve()
        stack.worker()

        # when 20 publishEvent calls with one idempotency key arrive at once
        async def publish_all() -> list[dict[str, Any]]:
            variables = {
                "input": {
                    "companyId": tenants.a,
                    "webhook": "ORDER_STATUS",
                    "subject": "ord-1",
                    "idempotencyKey": "ord-1:SCHEDULED",
                    "payload": order_status_payload(),
                }
            }
            limits = httpx.Limits(max_connections=calls)
            async with httpx.AsyncClient(
                base_url=api_process.url(""), timeout=30, limits=limits
            ) as http:
                start = asyncio.Event()

                async def one() -> dict[str, Any]:
                    await start.wait()
                    response = await http.post(
                        "/graphql",
                        json={"query": PUBLISH_EVENT, "variables": variables},
                        headers={"authorization": f"Bearer {tenants.publisher}"},
                    )
                    body: dict[str, Any] = response.json()
                    return body

                tasks = [asyncio.create_task(one()) for _ in range(calls)]
                await asyncio.sleep(0.2)
                start.set()
                return await asyncio.gather(*tasks)

        bodies = stack.run(publish_all())
        requests = receiver.wait_for(2, timeout=20)
        time.sleep(1.0)  # a second set of deliveries would arrive now
        requests = receiver.requests

    # then all calls return that one event, with one delivery per subscription
    assert [body.get("errors") for body in bodies] == [None] * calls
    results = [body["data"]["publishEvent"] for body in bodies]
    assert [result["userErrors"] for result in results] == [[]] * calls
    event_ids = {result["event"]["id"] for result in results}
    delivery_sets = {
        frozenset(delivery["id"] for delivery in result["event"]["deliveries"])
        for result in results
    }
    events = stack.sql("SELECT id::text AS id FROM events")
    deliveries = stack.sql("SELECT id::text AS id, subscription_id::text AS sub FROM deliveries")
    print(
        f"\n{calls} concurrent publishes with one key: {len(event_ids)} event id(s) returned,"
        f" {len(events)} event(s) and {len(deliveries)} deliveries stored, {len(requests)}"
        " requests received"
    )
    assert len(event_ids) == 1
    assert [row["id"] for row in events] == list(event_ids)
    assert delivery_sets == {frozenset(row["id"] for row in deliveries)}
    assert sorted(row["sub"] for row in deliveries) == sorted([first.id, second.id])
    assert sorted(request.path for request in requests) == ["/one", "/two"]


SEED_OLD_WORK = """
WITH old_events AS (
    INSERT INTO events (company_id, webhook_key, subject, payload, body, created_at)
    SELECT %(company)s, 'ORDER_STATUS', 'old-' || n, '{"old": true}'::jsonb,
           convert_to(repeat('x', 400), 'UTF8'), now() - interval '45 days'
    FROM generate_series(1, %(count)s) AS n
    RETURNING id, created_at
), old_deliveries AS (
    INSERT INTO deliveries (webhook_id, company_id, event_id, subscription_id, webhook_key,
                            status, attempt_count, max_attempts, created_at, completed_at)
    SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), %(company)s, id,
           %(subscription)s, 'ORDER_STATUS', 'SUCCEEDED', 1, 10, created_at, created_at
    FROM old_events
    RETURNING id, created_at
)
INSERT INTO delivery_attempts (delivery_id, cycle, number, company_id, started_at, duration_ms,
                               response_status, response_body, succeeded)
SELECT id, 1, 1, %(company)s, created_at, 5, 200, repeat('y', 400), true FROM old_deliveries
"""


def test_a_retention_purge_does_not_stall_publishing_or_delivery(stack: Stack) -> None:
    # given 25,000 old succeeded deliveries (25,000 attempt details and 25,000 event
    # bodies to purge: 50,000 rows), and a worker delivering a live company's events
    old = 25_000
    tenants = seed_tenants(stack.url)
    with Receiver() as receiver:
        archive = stack.subscribe(tenants.b, "http://127.0.0.1:9/archive")
        live = stack.subscribe(tenants.a, receiver.url_for("/live"))
        stack.sql(SEED_OLD_WORK, company=tenants.b, subscription=archive.id, count=old)
        # The worker runs the hourly purge at once when it starts within ten minutes after
        # hh:17 (Procrastinate defers a periodic task it just missed): with a longer
        # retention its purge leaves the seeded rows to the one measured here.
        stack.worker(WEBHOOKS_RETENTION_DAYS=365)

        # when the purge runs while events are published (every 20 ms) and delivered
        async def publish_during_purge() -> tuple[list[float], list[float], float, Any]:
            latencies: list[float] = []
            baseline: list[float] = []
            async with open_services(stack.settings()) as services:

                async def publish_for(seconds: float, into: list[float]) -> None:
                    until = time.monotonic() + seconds
                    while time.monotonic() < until:
                        began = time.monotonic()
                        await stack.publish_one(services, live, order_status_payload(t=began))
                        into.append(time.monotonic() - began)
                        await asyncio.sleep(0.02)

                await publish_for(2.0, baseline)
                publishing = asyncio.create_task(publish_for(3600, latencies))
                began = time.monotonic()
                report = await purge_old_data(services.db, services.settings.retention_days)
                purge_took = time.monotonic() - began
                publishing.cancel()
                await asyncio.gather(publishing, return_exceptions=True)
            return baseline, latencies, purge_took, report

        baseline, latencies, purge_took, report = stack.run(publish_during_purge())
        published = len(baseline) + len(latencies)
        receiver.wait_for(published, timeout=30)

    # then every batch committed quickly enough that no publish waited long for it
    left = stack.sql(
        "SELECT count(*) AS n FROM delivery_attempts WHERE response_body IS NOT NULL"
        " AND company_id = %(company)s",
        company=tenants.b,
    )[0]["n"]
    print(
        f"\npurged {report.attempts} attempt details and {report.event_bodies} event bodies"
        f" in {purge_took:.1f} s; publish latency before: {summary(baseline)};"
        f" during ({len(latencies)} publishes): {summary(latencies)}; all {published} delivered"
    )
    assert (report.attempts, report.event_bodies) == (old, old)
    assert left == 0
    assert latencies, "the purge was over before anything was published"
    assert max(latencies) < 1.0
    wait_until(lambda: stack.open_jobs() == 0, timeout=30)
