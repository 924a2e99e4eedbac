"""The network to PostgreSQL drops every packet for a while, then carries them again.

Unlike a stopped server, a black-holed one refuses nothing: connects get no answer,
statements get no result, and nothing tells the client. The module's PostgreSQL runs in
a network namespace the test makes, behind a router namespace (:mod:`tests.faults.network`);
a real ``webhooks serve`` and ``webhooks worker`` reach it through the router, under a
steady publishing load over HTTP, while the test makes the router drop every packet and
then forward them again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from bench.namespace import unavailable_reason
from tests.acceptance.processes import Api, seed_tenants, subscribe, wait_until
from tests.database import make_scratch_dir
from tests.faults.harness import (  # noqa: F401 -- the fixtures
    OwnedPostgres,
    Publisher,
    Stack,
    duplicates,
    stack_fixture,
)
from tests.faults.network import Namespace, NamespacedPostgres
from tests.receivers import Receiver

OUTAGE_SECONDS = 20.0
# The service's bounds in this test: a connection is dead after 3 s without an answer, a
# connect gives up after 2 s, and so does waiting 3 s for a pooled connection.
LIMITS = {
    "WEBHOOKS_DB_DEAD_AFTER_SECONDS": 3,
    "WEBHOOKS_DB_CONNECT_TIMEOUT_SECONDS": 2,
    "WEBHOOKS_DB_POOL_TIMEOUT_SECONDS": 3,
}
# Generous: what a request may take in all during the outage (the limits above, one after
# the other, and a loaded machine); well under the outage it used to hang for.
REQUEST_BOUND_SECONDS = 12.0
PUBLISHES_BACK_WITHIN_SECONDS = 6.0
DELIVERIES_BACK_WITHIN_SECONDS = 8.0


@pytest.fixture(scope="module", name="owned_postgres")
def namespaced_postgres_fixture() -> Iterator[OwnedPostgres]:
    """This module's PostgreSQL, behind a network namespace of its own."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"black-hole test: {reason}")
    namespace = Namespace()
    namespace.create()
    owned = NamespacedPostgres(make_scratch_dir("webhooks-faults-pg-"), namespace)
    try:
        owned.start()
        owned.prepare_template()
        yield owned
    finally:
        try:
            owned.close()
        finally:
            namespace.delete()


def test_a_black_holed_database_ends_requests_within_the_bounds_and_recovers_in_seconds(
    stack: Stack,
) -> None:
    assert isinstance(stack.owner, NamespacedPostgres)
    network = stack.owner.namespace
    # given the API and a worker, reaching PostgreSQL over the veth, under steady load
    stack.configure(**LIMITS)
    tenants = seed_tenants(stack.url)
    with Receiver() as receiver:
        api_process = stack.serve()
        worker = stack.worker()
        with Api(api_process.url("")) as api:
            subscribe(api, tenants.key_a, receiver.url_for("/hook"))
        publisher = Publisher(
            api_process.url(""), tenants.publisher, tenants.a, pause=0.1, timeout=120
        )
        publisher.start()
        try:
            receiver.wait_for(10, timeout=20)

            # when every packet between the service and PostgreSQL is dropped for a while
            network.black_hole()
            dropped_at = time.monotonic()
            try:
                time.sleep(OUTAGE_SECONDS)
            finally:
                network.restore()
            restored_at = time.monotonic()

            # (the load goes on until publishes and deliveries are back)
            def back() -> bool:
                published = any(c.event_id and c.started > restored_at for c in publisher.calls)
                delivered = any(r.received_at > restored_at for r in receiver.requests)
                return published and delivered

            wait_until(back, timeout=60, interval=0.1, message=stack.processes.describe)
            time.sleep(1.0)
        finally:
            publisher.finish()

        # and every event whose publish succeeded is delivered
        expected = {event_id for _, event_id in publisher.succeeded}

        def delivered() -> bool:
            rows = stack.sql(
                "SELECT count(*) AS n FROM deliveries"
                " WHERE event_id = ANY(%(ids)s::uuid[]) AND status = 'SUCCEEDED'",
                ids=list(expected),
            )
            return bool(rows[0]["n"] == len(expected))

        wait_until(delivered, timeout=60, interval=0.25, message=stack.processes.describe)
        requests = list(receiver.requests)

    # then no request waited on the black hole longer than the bounds: those it caught
    # ended in time, as a retryable 503 UNAVAILABLE with Retry-After
    during = [c for c in publisher.calls if c.ended > dropped_at and c.started < restored_at]
    caught = [c for c in during if c.event_id is None]
    publish_back = min(c.ended for c in publisher.calls if c.event_id and c.started > restored_at)
    delivery_back = min(r.received_at for r in requests if r.received_at > restored_at)
    print(
        f"\nblack hole {OUTAGE_SECONDS:.0f} s: {len(during)} publishes during it, the longest"
        f" {max(c.took for c in during):.1f} s ({[(c.status, c.codes) for c in caught][:3]}"
        f"...); publishes back {publish_back - restored_at:.1f} s and deliveries back"
        f" {delivery_back - restored_at:.1f} s after the network; {len(expected)} delivered,"
        f" {sum(duplicates(requests).values())} duplicate sends"
    )
    assert max(c.took for c in during) < REQUEST_BOUND_SECONDS
    assert caught, "no publish was caught by the black hole"
    assert {(c.status, c.codes, c.retry_after) for c in caught} == {(503, ("UNAVAILABLE",), "5")}
    # and publishes and deliveries were back within seconds of the network's return
    assert publish_back - restored_at < PUBLISHES_BACK_WITHIN_SECONDS
    assert delivery_back - restored_at < DELIVERIES_BACK_WITHIN_SECONDS
    assert worker.returncode is None, worker.describe()
    assert api_process.returncode is None, api_process.describe()
