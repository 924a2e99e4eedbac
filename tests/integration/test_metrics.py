"""/metrics exposes what happened and how the queue looks, in Prometheus format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.delivery import metrics as app_metrics
from app.domain.events import NewEvent
from app.domain.subscriptions import NewSubscription
from app.store.services import Services
from tests.delivery import (
    OpenService,
    Service,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
)
from tests.payloads import order_status_payload
from tests.receivers import Receiver, respond
from tests.service import Tenants, create_subscription_for, publish_event_with
from tests.smtp import SmtpTestServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def scrape(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_queue_depth_and_oldest_due_job_come_from_the_database(
    http: httpx.AsyncClient, services: Services, tenants: Tenants
) -> None:
    await create_subscription_for(
        services, tenants.a, NewSubscription("ORDER_STATUS", "http://127.0.0.1:9/", "o@x.co")
    )
    for _ in range(3):
        await publish_event_with(
            services, NewEvent(tenants.a, "ORDER_STATUS", order_status_payload(n=1))
        )
    await asyncio.sleep(0.2)
    metrics = await scrape(http)
    assert metrics[("webhooks_queue_depth", (("queue", "deliveries"), ("state", "due")))] == 3
    assert metrics[("webhooks_oldest_due_job_age_seconds", ())] >= 0.2


async def test_attempts_and_outcomes_are_counted_by_the_worker(
    http: httpx.AsyncClient, services: Services, tenants: Tenants, worker: asyncio.Task[None]
) -> None:
    before = await scrape(http)
    refused = ("webhooks_attempts_total", (("status_class", "none"),))
    await create_subscription_for(
        services, tenants.a, NewSubscription("ORDER_STATUS", "http://127.0.0.1:9/", "o@x.co")
    )
    await publish_event_with(
        services, NewEvent(tenants.a, "ORDER_STATUS", order_status_payload(n=1))
    )
    deadline = asyncio.get_running_loop().time() + 5
    while (await scrape(http)).get(refused, 0) <= before.get(refused, 0):
        assert asyncio.get_running_loop().time() < deadline, "no attempt was counted"
        await asyncio.sleep(0.1)
    after = await scrape(http)
    assert after[("webhooks_attempt_duration_seconds_count", ())] > before.get(
        ("webhooks_attempt_duration_seconds_count", ()), 0
    )


def gauge(found: Samples, name: str) -> float:
    return found[(name, ())]


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.1)


async def test_the_gauges_count_workers_and_retries_pending(open_service: OpenService) -> None:
    # Given a running worker and a delivery whose first attempt failed (next in 60 s)
    service = await open_service(max_attempts=3)
    with Receiver(default=respond(500)) as receiver:
        await service.subscribe(receiver.url_for("/hook"))
        delivery_id = await service.publish()
        await service.wait_for_status(delivery_id, "RETRYING")

    # When /metrics is scraped
    found = await scrape(service.api.http)

    # Then it counts the retry, the one worker up, and its recent heartbeat
    assert gauge(found, "webhooks_queue_metrics_up") == 1
    assert gauge(found, "webhooks_retries_pending") == 1
    assert found[("webhooks_queue_depth", (("queue", "deliveries"), ("state", "scheduled")))] == 1
    assert found[("webhooks_queue_depth", (("queue", "notices"), ("state", "due")))] == 0
    assert gauge(found, "webhooks_workers_up") == 1
    assert 0 <= gauge(found, "webhooks_worker_heartbeat_age_seconds") < 5
    assert gauge(found, "webhooks_failure_emails_pending") == 0


async def test_a_stopped_worker_is_no_longer_up(open_service: OpenService) -> None:
    # Given a worker that ran and stopped (it unregisters)
    service = await open_service()
    await eventually(lambda: _workers(service, 1), "the worker never registered")
    await service.stop_worker()

    # When /metrics is scraped, then no worker is up and no heartbeat is reported
    found = await scrape(service.api.http)
    assert gauge(found, "webhooks_workers_up") == 0
    assert ("webhooks_worker_heartbeat_age_seconds", ()) not in found


async def test_a_killed_workers_registration_is_not_up(open_service: OpenService) -> None:
    # Given the registration a SIGKILLed worker leaves: its last heartbeat an hour ago
    service = await open_service(worker=False)
    await service.sql(
        "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour')"
    )

    # When /metrics is scraped, then it is not up, and its heartbeat is an hour old
    found = await scrape(service.api.http)
    assert gauge(found, "webhooks_workers_up") == 0
    assert 3600 <= gauge(found, "webhooks_worker_heartbeat_age_seconds") < 3660


async def _workers(service: Service, count: int) -> bool:
    rows = await service.sql("SELECT count(*) AS n FROM procrastinate_workers")
    return bool(rows[0]["n"] == count)


async def test_the_gauges_count_unsent_emails_and_unreported_failures(
    open_service: OpenService,
) -> None:
    # Given a mail server that is down, and failures grouped over a minute
    smtp = SmtpTestServer()  # never started: connections are refused
    service = await open_service(smtp_url=smtp.url, max_attempts=1, email_window_seconds=60)
    with Receiver(default=respond(500)) as failing, Receiver(default=respond(410)) as gone:
        await service.subscribe(failing.url_for("/hook"), notification_email="a@a.example")
        await service.subscribe(gone.url_for("/hook"), notification_email="b@a.example")
        # When one delivery fails (its email waits for the window) and one gets 410 Gone
        # (its email is due at once, and the mail server refuses it)
        event = await service.publish_event()
        for delivery in event["deliveries"]:
            await service.wait_for_status(delivery["id"], "FAILED")
        await eventually(lambda: _send_failed(service), "the email was never tried")

    # Then /metrics counts one unsent email, its age, and one failure not in an email yet
    found = await scrape(service.api.http)
    assert gauge(found, "webhooks_failure_emails_pending") == 1
    assert gauge(found, "webhooks_failure_email_oldest_pending_age_seconds") > 0
    assert gauge(found, "webhooks_failed_deliveries_unreported") == 1
    assert found[("webhooks_failure_emails_total", (("result", "failed"),))] >= 1


async def _send_failed(service: Service) -> bool:
    rows = await service.sql("SELECT 1 FROM failure_notices WHERE send_attempts >= 1")
    return bool(rows)


@pytest.fixture
async def locked_workers_table(open_service: OpenService) -> AsyncIterator[Service]:
    """A service (no worker) whose procrastinate_workers table another session holds
    locked, so the gauges' statement waits: a database that does not answer."""
    service = await open_service(worker=False)
    async with (
        await psycopg.AsyncConnection.connect(service.settings.database_url) as locker,
        locker.transaction(),
    ):
        await locker.execute("LOCK TABLE procrastinate_workers IN ACCESS EXCLUSIVE MODE")
        yield service


async def _waiting_reads(service: Service) -> int:
    rows = await service.sql(
        "SELECT count(*) AS n FROM pg_locks "
        "WHERE relation = 'procrastinate_workers'::regclass AND NOT granted"
    )
    return int(rows[0]["n"])


async def test_concurrent_scrapes_share_one_read_and_a_silent_database_fails_soft(
    locked_workers_table: Service,
) -> None:
    service = locked_workers_table
    # When 20 scrapes arrive at once while the database does not answer
    scrapes = [asyncio.create_task(scrape(service.api.http)) for _ in range(20)]
    await eventually(lambda: _one_waiting(service), "no read reached the database")
    await asyncio.sleep(0.5)
    # Then one statement waits for the database, not one per scrape
    assert await _waiting_reads(service) == 1
    # and each scrape answers within the read's deadline, with the process's counters
    # and without the database's gauges (missing, not a reassuring zero)
    started = asyncio.get_running_loop().time()
    results = await asyncio.gather(*scrapes)
    waited = asyncio.get_running_loop().time() - started
    assert waited < app_metrics.SNAPSHOT_TIMEOUT_SECONDS + 1
    for found in results:
        assert gauge(found, "webhooks_queue_metrics_up") == 0
        assert ("webhooks_oldest_due_job_age_seconds", ()) not in found
        assert ("webhooks_attempt_duration_seconds_count", ()) in found
    # and the statement was cancelled, not left waiting in the database
    await eventually(lambda: _no_waiting(service), "the timed-out read still waits")


async def _one_waiting(service: Service) -> bool:
    return await _waiting_reads(service) >= 1


async def _no_waiting(service: Service) -> bool:
    return await _waiting_reads(service) == 0


async def test_scrapes_within_the_cache_age_read_the_database_once(
    open_service: OpenService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given gauges cached for a second
    monkeypatch.setattr(app_metrics, "SNAPSHOT_MAX_AGE_SECONDS", 1.0)
    service = await open_service(worker=False)
    with Receiver() as receiver:
        await service.subscribe(receiver.url_for("/hook"))
        due = ("webhooks_queue_depth", (("queue", "deliveries"), ("state", "due")))
        assert (await scrape(service.api.http))[due] == 0

        # When three deliveries are queued, then a scrape at once still has the cached 0
        for _ in range(3):
            await service.publish()
        assert (await scrape(service.api.http))[due] == 0
        # and one after the cache's age reads them
        await asyncio.sleep(1.0)
        assert (await scrape(service.api.http))[due] == 3
