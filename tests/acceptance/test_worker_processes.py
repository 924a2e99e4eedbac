"""Real ``webhooks worker`` processes: killed, stopped and run side by side."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from standardwebhooks.webhooks import Webhook

from app.core.secret_box import generate_key
from app.domain import companies
from app.domain.events import NewEvent
from app.domain.subscriptions import NewSubscription
from app.store.services import open_services
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
from tests.receivers import Receiver, Reply, hang, respond
from tests.service import create_subscription_for, make_settings, publish_event_with

REQUEST_TIMEOUT = 2.0  # WEBHOOKS_REQUEST_TIMEOUT_SECONDS in service_environment
PUBLISHERS = 8  # concurrent in-process publishes (the services' pool holds 10 connections)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path / "logs") as started:
        yield started


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


@pytest.mark.slow
def test_a_killed_workers_attempt_is_made_again_with_the_same_webhook_id(
    database_url: str, tmp_path: Path, receiver: Receiver, processes: Processes
) -> None:
    # given a worker holding an attempt open: the receiver has not answered yet
    tenants = seed_tenants(database_url)
    env = service_environment(
        database_url, tmp_path / "data", generate_key(), WEBHOOKS_STALLED_AFTER_SECONDS="5"
    )
    first = processes.worker(env, name="worker-1")
    server = processes.serve(env)
    wait_for_listeners(database_url, 1, processes=processes)
    receiver.script("/slow", [hang(), respond(200)])
    with Api(server.url("")) as api:
        _, secret = subscribe(api, tenants.key_a, receiver.url_for("/slow"))
        [delivery] = publish(
            api, tenants.publisher, tenants.a, order_status_payload(external_id="k-1")
        )["deliveries"]
        receiver.wait_for(1, timeout=10)

        # when it is SIGKILLed mid-request and another worker starts
        first.stop(signal.SIGKILL, timeout=5)
        killed_at = time.monotonic()
        processes.worker(env, name="worker-2")
        requests = receiver.wait_for(2, timeout=25)
        recovered_after = requests[1].received_at - killed_at
        done = wait_for_status(api, tenants.key_a, delivery["id"], "SUCCEEDED")

    # then the attempt is made again, with the same webhook-id, and recorded once
    print(f"attempt re-sent {recovered_after:.1f} s after the SIGKILL")
    assert len(receiver.requests) == 2
    assert [request.header("webhook-id") for request in requests] == [done["webhookId"]] * 2
    # The killed attempt was never recorded, so the re-run is attempt 1 again.
    assert [request.header("webhook-attempt") for request in requests] == ["1", "1"]
    for request in requests:
        Webhook(secret).verify(request.body, dict(request.headers))
    assert requests[0].body == requests[1].body
    assert done["attemptCount"] == 1
    assert [(a["number"], a["succeeded"]) for a in done["attempts"]] == [(1, True)]


@pytest.mark.parametrize(
    ("reply", "status", "outcome"),
    [
        (respond(200, delay=1.5), "SUCCEEDED", {"responseStatus": 200, "succeeded": True}),
        (hang(), "RETRYING", {"responseStatus": None, "succeeded": False}),
    ],
    ids=["answered-in-time", "never-answered"],
)
def test_sigterm_lets_the_in_flight_attempt_finish_and_be_recorded(
    reply: Reply,
    status: str,
    outcome: dict[str, object],
    database_url: str,
    tmp_path: Path,
    receiver: Receiver,
    processes: Processes,
) -> None:
    tenants = seed_tenants(database_url)
    env = service_environment(database_url, tmp_path / "data", generate_key())
    worker = processes.worker(env)
    server = processes.serve(env)
    wait_for_listeners(database_url, 1, processes=processes)
    receiver.script("/slow", reply)
    with Api(server.url("")) as api:
        subscribe(api, tenants.key_a, receiver.url_for("/slow"))
        [delivery] = publish(
            api, tenants.publisher, tenants.a, order_status_payload(external_id="t-1")
        )["deliveries"]
        receiver.wait_for(1, timeout=10)

        worker.send(signal.SIGTERM)
        signalled_at = time.monotonic()
        exit_status = worker.wait(timeout=REQUEST_TIMEOUT + 5)
        took = time.monotonic() - signalled_at
        after = api.data(
            "query($id: ID!) { delivery(id: $id) { status attemptCount"
            " attempts { number responseStatus succeeded error } } }",
            {"id": delivery["id"]},
            key=tenants.key_a,
        )["delivery"]

    print(f"worker exited {took:.2f} s after SIGTERM")
    assert exit_status == 0, worker.describe()
    assert "worker stopped" in worker.log()
    assert after["status"] == status, after
    assert after["attemptCount"] == 1
    [attempt] = after["attempts"]
    assert {key: attempt[key] for key in outcome} == outcome, attempt
    assert attempt["number"] == 1
    if status == "RETRYING":
        assert "timed out" in attempt["error"]
    assert len(receiver.requests) == 1


@pytest.mark.slow
async def test_500_deliveries_by_two_workers_arrive_exactly_once_each(
    database_url: str, tmp_path: Path, receiver: Receiver, processes: Processes
) -> None:
    # given two worker processes listening for jobs
    count = 500
    secret_key = generate_key()
    env = service_environment(database_url, tmp_path / "data", secret_key)
    processes.worker(env, name="worker-1")
    processes.worker(env, name="worker-2")
    settings = make_settings(database_url, tmp_path / "data", secret_key=secret_key)
    async with open_services(settings) as services:
        await companies.create_company(services.db, "Company A", "company-a")
        _, secret = await create_subscription_for(
            services,
            "company-a",
            NewSubscription("ORDER_STATUS", receiver.url_for("/bulk"), "ops@example.com"),
        )
        wait_for_listeners(database_url, 2, processes=processes)
        publishing = asyncio.Semaphore(PUBLISHERS)

        async def publish_one(number: int) -> None:
            async with publishing:
                await publish_event_with(
                    services,
                    NewEvent(
                        "company-a",
                        "ORDER_STATUS",
                        order_status_payload(n=number),
                        subject=f"o-{number}",
                    ),
                )

        # when 500 events are published (each wakes both workers, which race for it)
        started = time.monotonic()
        await asyncio.gather(*(publish_one(number) for number in range(count)))
        published = time.monotonic() - started
        requests = await receiver.wait_for_async(count, timeout=60)
        delivered = time.monotonic() - started

    # then every delivery arrives exactly once, and is recorded once
    def settled() -> bool:
        with psycopg.connect(database_url) as connection:
            row = connection.execute(
                "SELECT (SELECT count(*) FROM deliveries WHERE status <> 'SUCCEEDED'),"
                " (SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing'))"
            ).fetchone()
        return row == (0, 0)

    wait_until(settled, timeout=15, interval=0.1, message=lambda: processes.describe())
    span = requests[-1].received_at - requests[0].received_at
    # Each worker logs every attempt ("attempt 1 to <url>: succeeded (200)").
    shares = [process.log().count(": succeeded (200)") for process in processes.started]
    print(
        f"{count} deliveries by 2 workers: published in {published:.2f} s, all received "
        f"{delivered:.2f} s after the first publish, {delivered - published:.2f} s after "
        f"the last; first to last request {span:.2f} s; attempts per worker {shares}"
    )
    with psycopg.connect(database_url) as connection:
        webhook_ids = {row[0] for row in connection.execute("SELECT webhook_id FROM deliveries")}
        attempts = connection.execute(
            "SELECT count(*), count(DISTINCT delivery_id), bool_and(succeeded), max(number)"
            " FROM delivery_attempts"
        ).fetchone()
    received = Counter(request.header("webhook-id") for request in receiver.requests)
    assert len(webhook_ids) == count
    assert set(received) == webhook_ids
    assert [webhook_id for webhook_id, n in received.items() if n != 1] == []
    assert attempts == (count, count, True, 1)
    verifier = Webhook(secret)
    for request in requests:
        verifier.verify(request.body, dict(request.headers))
    assert sorted(request.json()["data"]["n"] for request in requests) == list(range(count))
    for process in processes.started:
        assert process.returncode is None, process.describe()
    assert sum(shares) == count
    assert all(shares), f"one worker did everything: {shares}"
