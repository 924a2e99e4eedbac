"""Ordered delivery per subject through worker faults: SIGKILLs mid-attempt, and two
worker processes sharing the queue.

Real ``webhooks worker`` processes, a receiver that is slow enough for a kill to land
while it holds a request and fails some attempts, and a PostgreSQL owned by this module.
An order's events must reach the receiver in publish order whatever happens: a killed
attempt may be sent again (at-least-once), but nothing later of its order passes it.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence

import pytest

from app.core.delivery_ordering import DeliveryOrdering
from app.domain.events import NewEvent
from app.store.services import open_services
from tests.acceptance.processes import wait_until
from tests.faults.harness import (  # noqa: F401 -- the fixtures
    Stack,
    Sub,
    owned_postgres_fixture,
    stack_fixture,
)
from tests.faults.test_worker_faults import SlowReceiver
from tests.payloads import order_status_payload
from tests.receivers import RecordedRequest
from tests.service import publish_event_with


@pytest.fixture
def flaky() -> Iterator[SlowReceiver]:
    """A receiver answering after 5-30 ms that fails about one attempt in six (seeded)."""
    with SlowReceiver(seed=14, delay=(0.005, 0.03), error_rate=1 / 6) as receiver:
        yield receiver


def given_ordered_load(stack: Stack, url: str, orders: int, events: int, **settings: float) -> None:
    """An ordered subscription to ``url`` with ``events`` events of each of ``orders``
    orders waiting (retries 0.2 s apart, up to 10 attempts)."""
    stack.configure(
        WEBHOOKS_RETRY_INTERVAL_SECONDS=0.2,
        WEBHOOKS_POLL_INTERVAL_SECONDS=0.1,
        WEBHOOKS_MAX_ATTEMPTS=10,
        **settings,
    )
    stack.company("acme")
    sub = stack.subscribe("acme", url, ordering=DeliveryOrdering.PER_SUBJECT)
    publish_orders(stack, sub, orders, events)


def publish_orders(stack: Stack, sub: Sub, orders: int, events: int) -> None:
    """``events`` events of each of ``orders`` orders, each order's published one after
    another (its publish order), the orders interleaved."""

    async def work() -> None:
        async with open_services(stack.settings()) as services:
            for n in range(1, events + 1):
                for order_id in range(1, orders + 1):
                    payload = order_status_payload(order_id=order_id, n=n)
                    await publish_event_with(
                        services, NewEvent(sub.company_id, "ORDER_STATUS", payload)
                    )

    stack.run(work())


def arrivals_by_order(requests: Sequence[RecordedRequest]) -> dict[str, list[tuple[int, int]]]:
    """Per order: (event number, webhook-sequence) of each request, in arrival order."""
    seen: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for request in requests:
        body = request.json()
        seen[body["subject"]].append(
            (int(body["data"]["n"]), int(request.header("webhook-sequence") or 0))
        )
    return seen


def assert_each_order_arrived_in_publish_order(
    requests: Sequence[RecordedRequest], orders: int, events: int
) -> None:
    seen = arrivals_by_order(requests)
    assert sorted(seen) == sorted(str(order_id) for order_id in range(1, orders + 1))
    for subject, arrived in seen.items():
        # event n is the order's n-th, numbered n; repeats (retries, an attempt a kill
        # interrupted) come before anything later of the order
        assert all(n == sequence for n, sequence in arrived), (subject, arrived)
        numbers = [sequence for _, sequence in arrived]
        assert numbers == sorted(numbers), (subject, numbers)
        assert sorted(set(numbers)) == list(range(1, events + 1)), (subject, numbers)


def assert_queues_emptied(stack: Stack) -> None:
    rows = stack.sql("SELECT subject, open_count FROM subject_queues WHERE open_count <> 0")
    assert rows == []
    assert stack.sql("SELECT id FROM deliveries WHERE in_queue") == []


def test_sigkilled_workers_never_let_a_later_event_of_an_order_pass_an_earlier_one(
    stack: Stack, flaky: SlowReceiver
) -> None:
    # given an ordered subscription with 8 events of each of 10 orders waiting, one
    # worker at concurrency 4, and a receiver failing about one attempt in six
    orders, events, kills = 10, 8, 3
    given_ordered_load(
        stack,
        flaky.receiver.url_for("/hook"),
        orders,
        events,
        WEBHOOKS_STALLED_AFTER_SECONDS=5,
        WEBHOOKS_WORKER_CONCURRENCY=4,
    )
    assert stack.status_counts() == Counter({"PENDING": orders, "HELD": orders * (events - 1)})
    worker = stack.worker("worker-0")

    # when the worker is SIGKILLed while it holds a request open, and restarted at once
    rng = random.Random(2026)
    for number in range(1, kills + 1):
        time.sleep(rng.uniform(0.2, 1.0))
        wait_until(lambda: flaky.holding > 0, timeout=20, interval=0.001)
        worker.kill()
        worker = stack.worker(f"worker-{number}", listening=None)
    settled = stack.wait_settled(orders * events, timeout=120, final=["SUCCEEDED", "FAILED"])

    # then every delivery succeeded, and each order's events reached the receiver in
    # publish order, numbered 1 to 8, the only repeats being those of one delivery
    requests = flaky.receiver.requests
    print(
        f"\n{orders * events} ordered deliveries, {kills} SIGKILLs: {len(requests)} requests,"
        f" statuses {dict(settled)}"
    )
    assert settled == Counter({"SUCCEEDED": orders * events})
    assert stack.attempt_gaps() == []
    assert_each_order_arrived_in_publish_order(requests, orders, events)
    assert_queues_emptied(stack)


def test_two_workers_deliver_each_order_in_publish_order(stack: Stack, flaky: SlowReceiver) -> None:
    # given an ordered subscription with 10 events of each of 20 orders waiting, and a
    # receiver failing about one attempt in six
    orders, events = 20, 10
    given_ordered_load(
        stack, flaky.receiver.url_for("/hook"), orders, events, WEBHOOKS_WORKER_CONCURRENCY=10
    )

    # when two worker processes deliver them
    workers = [stack.worker("worker-1"), stack.worker("worker-2", listening=2)]
    settled = stack.wait_settled(orders * events, timeout=120, final=["SUCCEEDED", "FAILED"])

    # then each order's events arrived in publish order, numbered 1 to 10, each attempt
    # once, and both workers took part
    requests = flaky.receiver.requests
    assert settled == Counter({"SUCCEEDED": orders * events})
    assert_each_order_arrived_in_publish_order(requests, orders, events)
    attempts = Counter((r.header("webhook-id"), r.header("webhook-attempt")) for r in requests)
    assert set(attempts.values()) == {1}
    assert all(": succeeded" in worker.log() for worker in workers)
    assert stack.attempt_gaps() == []
    assert_queues_emptied(stack)
