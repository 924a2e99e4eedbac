"""Traces across real processes: ``webhooks serve`` and ``webhooks worker`` export their
spans over OTLP/HTTP to a real endpoint the test runs, and the attempts the worker makes
continue and link to the publish span the API made, through the database alone.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.secret_box import generate_key
from tests.acceptance.processes import (
    PUBLISH_EVENT,
    Api,
    Processes,
    publish,
    seed_tenants,
    service_environment,
    subscribe,
    wait_for_listeners,
    wait_for_status,
)
from tests.otlp import Collector, ExportedSpan
from tests.payloads import order_status_payload
from tests.receivers import Receiver, black_hole, respond

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
STATUS_ERROR = 2


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path / "logs") as started:
        yield started


def test_the_api_and_the_worker_export_one_linked_trace_to_an_otlp_endpoint(
    database_url: str, tmp_path: Path, processes: Processes
) -> None:
    with Collector() as collector, Receiver() as receiver:
        # Given an API exporting at once and a worker that exports only when it stops
        # (its batch delay is a minute: what arrives then was flushed at shutdown)
        tenants = seed_tenants(database_url)
        env = service_environment(
            database_url,
            tmp_path / "data",
            generate_key(),
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
            OTEL_SERVICE_NAME="webhooks-under-test",
        )
        api_process = processes.serve({**env, "OTEL_BSP_SCHEDULE_DELAY": "100"})
        worker = processes.worker({**env, "OTEL_BSP_SCHEDULE_DELAY": "60000"})
        wait_for_listeners(database_url, 1, processes=processes)
        receiver.script("/hook", [respond(503), respond(200)])

        with Api(api_process.url("")) as api:
            subscribe(api, tenants.key_a, receiver.url_for("/hook"))
            # When the order system publishes inside a trace of its own
            response = api.http.post(
                "/graphql",
                json={
                    "query": PUBLISH_EVENT,
                    "variables": {
                        "input": {
                            "companyId": tenants.a,
                            "webhook": "ORDER_STATUS",
                            "payload": order_status_payload(order_id=332818),
                        }
                    },
                },
                headers={
                    "authorization": f"Bearer {tenants.publisher}",
                    "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
                },
            )
            assert response.status_code == 200, response.text
            [delivery] = response.json()["data"]["publishEvent"]["event"]["deliveries"]
            # and the receiver fails once, then answers
            wait_for_status(api, tenants.key_a, delivery["id"], "SUCCEEDED")
        requests = receiver.requests

        # Then the API's publish span arrives, in the caller's trace
        [published] = collector.wait_for(lambda spans: _named(spans, "publishEvent"))
        assert (published.trace_id, published.parent_span_id) == (CALLER_TRACE, CALLER_SPAN)
        assert published.kind == SPAN_KIND_SERVER
        assert published.resource["service.name"] == "webhooks-under-test"
        assert published.resource["webhooks.process"] == "api"
        assert published.attributes["webhooks.event.subject"] == "332818"
        assert _named(collector.received(), "fan-out")

        # and the worker's, once it stops (flushed at shutdown), continue and link to it
        assert not _named(collector.received(), "webhook attempt")
        assert worker.stop(signal.SIGTERM, timeout=20) == 0
        attempts = collector.wait_for(
            lambda spans: (found := _named(spans, "webhook attempt")) and len(found) == 2 and found
        )
    attempts.sort(key=lambda span: span.attributes["webhooks.attempt.number"])
    for span in attempts:
        assert span.resource["webhooks.process"] == "worker"
        assert span.kind == SPAN_KIND_CLIENT
        assert (span.trace_id, span.parent_span_id) == (CALLER_TRACE, published.span_id)
        assert [(link.trace_id, link.span_id) for link in span.links] == [
            (CALLER_TRACE, published.span_id)
        ]
        assert span.attributes["webhooks.delivery.id"] == delivery["id"]
    assert [span.attributes["http.response.status_code"] for span in attempts] == [503, 200]
    assert attempts[0].attributes["error.type"] == "503"
    assert attempts[0].status_code == STATUS_ERROR
    # and the receiver got each attempt's own traceparent
    assert [request.header("traceparent") for request in requests] == [
        f"00-{CALLER_TRACE}-{span.span_id}-01" for span in attempts
    ]


def test_a_dead_collector_neither_holds_up_deliveries_nor_the_processes_stop(
    database_url: str, tmp_path: Path, processes: Processes
) -> None:
    with black_hole() as collector, Receiver() as receiver:
        # Given processes exporting, every 50 ms, to an endpoint that never answers a SYN
        tenants = seed_tenants(database_url)
        env = service_environment(
            database_url,
            tmp_path / "data",
            generate_key(),
            OTEL_EXPORTER_OTLP_ENDPOINT=collector,
            OTEL_EXPORTER_OTLP_TIMEOUT="2",
            OTEL_BSP_SCHEDULE_DELAY="50",
        )
        api_process = processes.serve(env)
        worker = processes.worker(env)
        wait_for_listeners(database_url, 1, processes=processes)
        with Api(api_process.url("")) as api:
            subscribe(api, tenants.key_a, receiver.url_for("/hook"))

            # When events are published while the exporters hang
            started = time.monotonic()
            deliveries = [
                publish(api, tenants.publisher, tenants.a, order_status_payload(order_id=n))[
                    "deliveries"
                ][0]
                for n in range(20)
            ]
            receiver.wait_for(20, timeout=10)
            took = time.monotonic() - started
            for delivery in deliveries:
                wait_for_status(api, tenants.key_a, delivery["id"], "SUCCEEDED")

        # Then every delivery went out at once (the exporter's 2 s waits are elsewhere)
        assert took < 2.0
        # and each process stops within the exporter's timeout (its last export given up)
        for process in (worker, api_process):
            stopping = time.monotonic()
            assert process.stop(signal.SIGTERM, timeout=20) == 0
            assert time.monotonic() - stopping < 8


def _named(spans: list[ExportedSpan], name: str) -> list[ExportedSpan]:
    return [span for span in spans if span.name == name]
