"""Operator events through SIGKILLed workers: each delivery that fails for good is
reported exactly once (one DELIVERY_FAILED event), though kills interrupt its attempts.

Real ``webhooks worker`` processes, a real receiver that always fails (slowly enough for
kills to land mid-request), and a PostgreSQL owned by this module.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from app.domain.subscriptions import NewSubscription
from app.store.services import open_services
from tests.acceptance.processes import wait_until
from tests.faults.harness import (  # noqa: F401 -- the fixtures
    Stack,
    owned_postgres_fixture,
    stack_fixture,
)
from tests.faults.test_worker_faults import SlowReceiver
from tests.payloads import order_status_payload
from tests.service import create_subscription_for


@pytest.fixture
def failing_receiver() -> Iterator[SlowReceiver]:
    """/hook fails every attempt after 5-30 ms; anything else (/ops) answers 200 at once."""
    with SlowReceiver(seed=17, delay=(0.005, 0.03), error_rate=1.0) as receiver:
        yield receiver


def test_sigkilled_workers_report_each_failed_delivery_exactly_once(
    stack: Stack, failing_receiver: SlowReceiver
) -> None:
    # Given 40 deliveries to a receiver that always fails (two attempts each), a
    # subscription of the same company to DELIVERY_FAILED, and one worker at concurrency 1
    count, kills = 40, 3
    stack.configure(
        WEBHOOKS_STALLED_AFTER_SECONDS=5,
        WEBHOOKS_WORKER_CONCURRENCY=1,
        WEBHOOKS_RETRY_INTERVAL_SECONDS=0.1,
        WEBHOOKS_POLL_INTERVAL_SECONDS=0.1,
        WEBHOOKS_MAX_ATTEMPTS=2,
        WEBHOOKS_EMAIL_WINDOW_SECONDS=0,
    )
    stack.company("acme")
    orders = stack.subscribe("acme", failing_receiver.receiver.url_for("/hook"))

    async def watch() -> None:
        async with open_services(stack.settings()) as services:
            await create_subscription_for(
                services,
                "acme",
                NewSubscription(
                    "DELIVERY_FAILED",
                    failing_receiver.receiver.url_for("/ops"),
                    "ops@example.com",
                ),
            )

    stack.run(watch())
    published = stack.publish([(orders, order_status_payload(n=n)) for n in range(count)])
    worker = stack.worker("worker-0")

    # When the worker is SIGKILLed at random moments while it holds a request, and
    # restarted at once
    rng = random.Random(2027)
    for number in range(1, kills + 1):
        time.sleep(rng.uniform(0.2, 1.0))
        wait_until(lambda: failing_receiver.holding > 0, timeout=20, interval=0.001)
        worker.kill()
        worker = stack.worker(f"worker-{number}", listening=None)
    settled = stack.wait_settled(2 * count, timeout=120, final=["SUCCEEDED", "FAILED"])

    # Then every order delivery FAILED and each is the subject of exactly one event,
    # delivered (at least once) to the operator subscription
    assert settled == Counter({"FAILED": count, "SUCCEEDED": count})
    reported = stack.sql(
        "SELECT payload ->> 'delivery_id' AS delivery_id, count(*) AS n FROM events"
        " WHERE webhook_key = 'DELIVERY_FAILED' GROUP BY 1"
    )
    assert {row["delivery_id"]: row["n"] for row in reported} == {
        p.delivery_id: 1 for p in published
    }
    arrived = {
        r.json()["data"]["delivery_id"] for r in failing_receiver.receiver.requests_to("/ops")
    }
    assert arrived == {p.delivery_id for p in published}
    assert stack.attempt_gaps() == []
