"""/metrics exposes what happened and how the queue looks, in Prometheus format."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.domain.events import NewEvent
from app.domain.subscriptions import NewSubscription
from app.store.services import Services
from tests.payloads import order_status_payload
from tests.service import Tenants, create_subscription_for, publish_event_with


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
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
