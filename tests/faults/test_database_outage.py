"""PostgreSQL goes away and comes back: the API says so, and nothing is lost.

The module's own durable cluster is stopped (``pg_ctl stop -m fast``: every session is
cut, as in a failover) under a real ``webhooks serve`` and ``webhooks worker``, then
started again; neither process is restarted by hand.
"""

from __future__ import annotations

import time

import httpx

from tests.acceptance.processes import PUBLISH_EVENT, Api, seed_tenants, subscribe, wait_until
from tests.faults.harness import (  # noqa: F401 -- the fixtures
    Publisher,
    Stack,
    owned_postgres_fixture,
    stack_fixture,
)
from tests.payloads import order_status_payload
from tests.receivers import Receiver

DELIVERIES = "{ deliveries(first: 1) { nodes { id status } } }"
OUTAGE_SECONDS = 5.0
POOL_TIMEOUT = 10.0  # app.store.database.Database.create_pool
READINESS_TIMEOUT = 2.0  # app.web.probes.READINESS_TIMEOUT_SECONDS
POLL_INTERVAL = 5.0  # slow on purpose: a delivery within ~1 s proves LISTEN works


def test_while_the_database_is_down_the_api_answers_with_an_error_not_a_hang(
    stack: Stack,
) -> None:
    # given a running API
    tenants = seed_tenants(stack.url)
    api_process = stack.serve()

    # when PostgreSQL stops, and stays down while the API is asked
    stack.owner.stop()
    down_at = time.monotonic()
    ready = httpx.get(api_process.url("/readyz"), timeout=60)
    ready_took = time.monotonic() - down_at
    began = time.monotonic()
    query = httpx.post(
        api_process.url("/graphql"),
        json={"query": DELIVERIES},
        headers={"authorization": f"Bearer {tenants.key_a}"},
        timeout=60,
    )
    query_took = time.monotonic() - began
    stack.owner.start()
    up_at = time.monotonic()

    # then it said so promptly, and is ready again without a restart
    api_process.wait_for_http("/readyz", timeout=30)
    back = time.monotonic() - up_at
    with Api(api_process.url("")) as api:
        assert api.data(DELIVERIES, key=tenants.key_a)["deliveries"]["nodes"] == []
    print(
        f"\ndatabase down: /readyz {ready.status_code} in {ready_took:.2f} s; GraphQL query"
        f" {query.status_code} {query.text[:90]!r} in {query_took:.2f} s; ready again"
        f" {back:.1f} s after the restart"
    )
    assert ready.status_code == 503
    assert ready_took <= READINESS_TIMEOUT + 1.5
    assert query_took <= POOL_TIMEOUT + 3
    assert query.status_code == 503
    assert [error["extensions"]["code"] for error in query.json()["errors"]] == ["UNAVAILABLE"]
    assert query.headers["retry-after"] == "5"
    assert api_process.returncode is None


def test_a_database_restart_under_load_loses_no_event_and_needs_no_manual_restart(
    stack: Stack,
) -> None:
    # given the API and a worker under a steady publishing load
    stack.configure(WEBHOOKS_POLL_INTERVAL_SECONDS=POLL_INTERVAL, WEBHOOKS_STALLED_AFTER_SECONDS=5)
    tenants = seed_tenants(stack.url)
    with Receiver() as receiver:
        api_process = stack.serve()
        worker = stack.worker()
        with Api(api_process.url("")) as api:
            subscribe(api, tenants.key_a, receiver.url_for("/hook"))
        publisher = Publisher(api_process.url(""), tenants.publisher, tenants.a)
        publisher.start()
        try:
            receiver.wait_for(20, timeout=20)

            # when PostgreSQL stops for five seconds
            stack.owner.stop()
            down_at = time.monotonic()
            time.sleep(OUTAGE_SECONDS)
            stack.owner.start()
            up_at = time.monotonic()

            # then the API and the worker come back by themselves, LISTEN included
            api_process.wait_for_http("/readyz", timeout=30)
            api_back = time.monotonic() - up_at
            stack.wait_for_listeners(1, worker, timeout=30)
            worker_back = time.monotonic() - up_at
            time.sleep(1.0)
        finally:
            publisher.finish()
        receiver.clear()
        with Api(api_process.url("")) as api:
            began = time.monotonic()
            fresh = api.data(
                PUBLISH_EVENT,
                {
                    "input": {
                        "companyId": tenants.a,
                        "webhook": "ORDER_STATUS",
                        "payload": order_status_payload(),
                    }
                },
                key=tenants.publisher,
            )["publishEvent"]["event"]
        [arrived] = receiver.wait_for(1, timeout=POLL_INTERVAL * 3)
        fresh_latency = arrived.received_at - began

        # and every event whose publish succeeded is delivered
        expected = {event_id for _, event_id in publisher.succeeded} | {fresh["id"]}

        def delivered() -> bool:
            rows = stack.sql(
                "SELECT count(*) AS n FROM deliveries"
                " WHERE event_id = ANY(%(ids)s::uuid[]) AND status = 'SUCCEEDED'",
                ids=list(expected),
            )
            return bool(rows[0]["n"] == len(expected))

        wait_until(delivered, timeout=60, interval=0.25, message=stack.processes.describe)

    before = [when for when, _ in publisher.succeeded if when < down_at]
    print(
        f"\noutage {OUTAGE_SECONDS:.0f} s: API ready {api_back:.1f} s and worker listening"
        f" {worker_back:.1f} s after the restart; a new publish delivered in"
        f" {fresh_latency * 1000:.0f} ms; {len(publisher.succeeded)} publishes succeeded"
        f" ({len(before)} before the outage), {len(publisher.failed)} failed; all"
        f" {len(expected)} delivered"
    )
    assert before, "nothing was published before the outage"
    assert fresh_latency < 2.0
    assert worker.returncode is None, worker.describe()
    assert api_process.returncode is None


LONG_OUTAGE_SECONDS = 18.0  # the old restart backoff (1, 2, 4, 8, 16 s) overshot it by ~13 s
WORKER_BACK_WITHIN_SECONDS = 6.0


def test_after_a_long_outage_the_worker_delivers_within_seconds_of_the_databases_return(
    stack: Stack,
) -> None:
    # given a worker with one subscription to deliver to
    stack.company("acme")
    with Receiver() as receiver:
        sub = stack.subscribe("acme", receiver.url_for("/hook"))
        worker = stack.worker()

        # when PostgreSQL stays away long enough for the restart backoff to grow, and
        # comes back
        stack.owner.stop()
        time.sleep(LONG_OUTAGE_SECONDS)
        stack.owner.start()
        up_at = time.monotonic()

        # then the worker is listening, and delivering, within seconds
        stack.wait_for_listeners(1, worker, timeout=40)
        listening_after = time.monotonic() - up_at
        stack.publish([(sub, order_status_payload(after="outage"))])
        [arrived] = receiver.wait_for(1, timeout=40)
    delivered_after = arrived.received_at - up_at
    print(
        f"\noutage {LONG_OUTAGE_SECONDS:.0f} s: worker listening {listening_after:.1f} s and a"
        f" new event delivered {delivered_after:.1f} s after the database's return"
    )
    assert delivered_after < WORKER_BACK_WITHIN_SECONDS, worker.log()[-3000:]
    assert worker.returncode is None, worker.describe()
