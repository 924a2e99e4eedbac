"""What Prometheus scrapes in production: ``webhooks serve`` (its /metrics: the
database's gauges and its own counters) and ``webhooks worker --metrics-port`` (the
worker's counters only), as real processes (README, "Dashboard and alerts")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.core.secret_box import generate_key
from bench.processes import free_port
from tests.acceptance.processes import (
    Api,
    Processes,
    publish,
    seed_tenants,
    service_environment,
    subscribe,
    wait_for_listeners,
    wait_for_status,
    wait_until,
)
from tests.payloads import order_status_payload
from tests.receivers import Receiver

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=5.0)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path / "logs") as started:
        yield started


def test_the_worker_serves_its_counters_and_the_api_the_queue_gauges(
    database_url: str, tmp_path: Path, processes: Processes
) -> None:
    # Given the API and a worker serving its metrics on a port of its own
    tenants = seed_tenants(database_url)
    env = service_environment(database_url, tmp_path / "data", generate_key())
    port = free_port()
    processes.worker(env, "--metrics-port", str(port))
    server = processes.serve(env)
    wait_for_listeners(database_url, 1, processes=processes)
    worker_metrics = f"http://127.0.0.1:{port}/metrics"
    succeeded = ("webhooks_deliveries_total", (("outcome", "succeeded"),))

    # When an event is delivered by the worker
    with Receiver() as receiver, Api(server.url("")) as api:
        subscribe(api, tenants.key_a, receiver.url_for("/hook"))
        [delivery] = publish(api, tenants.publisher, tenants.a, order_status_payload())[
            "deliveries"
        ]
        wait_for_status(api, tenants.key_a, delivery["id"], "SUCCEEDED")

    # Then the worker's port counts it (the counter lives where the work was done)
    wait_until(
        lambda: scrape(worker_metrics)[succeeded] >= 1 or None,
        timeout=5,
        interval=0.1,
        message=lambda: "the worker's /metrics never counted the delivery",
    )
    worker = scrape(worker_metrics)
    assert worker[("webhooks_attempts_total", (("status_class", "2xx"),))] == 1
    assert worker[("webhooks_attempt_duration_seconds_count", ())] == 1
    # and leaves the database's gauges to the API, which sees the worker up
    assert ("webhooks_workers_up", ()) not in worker
    assert ("webhooks_queue_metrics_up", ()) not in worker
    api_side = scrape(server.url("/metrics"))
    assert api_side[("webhooks_queue_metrics_up", ())] == 1
    assert api_side[("webhooks_workers_up", ())] == 1
    assert api_side[succeeded] == 0  # the API process delivered nothing
