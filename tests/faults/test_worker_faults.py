"""Workers that die (SIGKILL) or are stopped (SIGTERM) in the middle of a load.

Real ``webhooks worker`` processes, a real receiver that is slow enough for signals to
land mid-request, and a PostgreSQL owned by this module.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest
from standardwebhooks.webhooks import Webhook

from tests.acceptance.processes import wait_until
from tests.faults.harness import (  # noqa: F401 -- the fixtures
    Stack,
    duplicates,
    owned_postgres_fixture,
    stack_fixture,
)
from tests.payloads import order_status_payload
from tests.receivers import Receiver, RecordedRequest, Reply, respond


class SlowReceiver:
    """Answers after a short random delay (seeded per webhook-id and attempt), sometimes
    with a 500, and knows how many requests it is holding right now."""

    def __init__(self, seed: int, *, delay: tuple[float, float], error_rate: float) -> None:
        self.seed = seed
        self.delay = delay
        self.error_rate = error_rate
        self.holding = 0
        self._lock = threading.Lock()
        self.receiver = Receiver()

    def __enter__(self) -> SlowReceiver:
        self.receiver.script("/hook", self._reply)
        self.receiver.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.receiver.stop()

    def _reply(self, request: RecordedRequest) -> Reply:
        rng = random.Random(
            f"{self.seed}:{request.header('webhook-id')}:{request.header('webhook-attempt')}"
        )
        status = 500 if rng.random() < self.error_rate else 200
        with self._lock:
            self.holding += 1
        try:
            time.sleep(rng.uniform(*self.delay))
        finally:
            with self._lock:
                self.holding -= 1
        return respond(status)


@pytest.fixture
def slow_receiver() -> Iterator[SlowReceiver]:
    with SlowReceiver(seed=7, delay=(0.005, 0.03), error_rate=0.15) as receiver:
        yield receiver


def test_sigkilled_workers_lose_nothing_and_resend_at_most_the_attempt_in_flight(
    stack: Stack, slow_receiver: SlowReceiver
) -> None:
    # given 300 deliveries to a receiver that takes 5-30 ms and fails 15% of attempts,
    # and one worker at concurrency 1 (so a kill can interrupt exactly one attempt)
    count, kills = 300, 5
    stack.configure(
        WEBHOOKS_STALLED_AFTER_SECONDS=5,
        WEBHOOKS_WORKER_CONCURRENCY=1,
        WEBHOOKS_RETRY_INTERVAL_SECONDS=0.2,
        WEBHOOKS_POLL_INTERVAL_SECONDS=0.1,
        WEBHOOKS_MAX_ATTEMPTS=10,
    )
    stack.company("acme")
    sub = stack.subscribe("acme", slow_receiver.receiver.url_for("/hook"))
    published = stack.publish([(sub, order_status_payload(n=n)) for n in range(count)])
    started = time.monotonic()
    worker = stack.worker("worker-0")

    # when the worker is SIGKILLed at random moments, always while it holds a request
    # open, and restarted at once
    rng = random.Random(2026)
    kill_times: list[float] = []
    for number in range(1, kills + 1):
        time.sleep(rng.uniform(0.3, 1.8))
        wait_until(lambda: slow_receiver.holding > 0, timeout=10, interval=0.001)
        worker.kill()
        kill_times.append(time.monotonic() - started)
        # Not waited for: the next kill waits until this worker holds a request.
        worker = stack.worker(f"worker-{number}", listening=None)
    settled = stack.wait_settled(count, timeout=90, final=["SUCCEEDED", "FAILED"])
    took = time.monotonic() - started

    # then every delivery succeeded, every attempt number was recorded once and in
    # order, and the only repeats are the attempts a kill interrupted
    requests = slow_receiver.receiver.requests
    extra = duplicates(requests)
    print(
        f"\n{count} deliveries, {kills} SIGKILLs at "
        f"{', '.join(f'{moment:.1f}' for moment in kill_times)} s: all settled in {took:.1f} s;"
        f" {len(requests)} requests, {sum(extra.values())} duplicate attempt(s)"
        f" (bound: {kills}); statuses {dict(settled)}"
    )
    assert settled == Counter({"SUCCEEDED": count})
    assert stack.attempt_gaps() == []
    assert sum(extra.values()) <= kills, extra
    webhook_ids_by_event: dict[str, set[str]] = defaultdict(set)
    for request in requests:
        webhook_ids_by_event[request.json()["id"]].add(request.header("webhook-id") or "")
    expected = {p.event_id: {p.webhook_id} for p in published}
    assert dict(webhook_ids_by_event) == expected
    verifier = Webhook(sub.secret)
    for request in requests:
        verifier.verify(request.body, dict(request.headers))
    # Each attempt the receiver saw is the one recorded, or a repeat of it.
    recorded = {
        (row["webhook_id"], str(row["number"]))
        for row in stack.sql(
            "SELECT d.webhook_id, a.number FROM delivery_attempts a"
            " JOIN deliveries d ON d.id = a.delivery_id"
        )
    }
    seen = {(r.header("webhook-id"), r.header("webhook-attempt")) for r in requests}
    assert seen == recorded


def test_sigterm_finishes_and_records_the_attempts_in_flight_then_exits(
    stack: Stack,
) -> None:
    # given a load spread over five subscriptions whose receiver answers after 1 s
    count, request_timeout = 150, 2.0
    stack.configure(
        WEBHOOKS_REQUEST_TIMEOUT_SECONDS=request_timeout, WEBHOOKS_WORKER_CONCURRENCY=50
    )
    with Receiver(default=respond(200, delay=1.0)) as receiver:
        subs = []
        for number in range(5):
            stack.company(f"tenant-{number}")
            subs.append(stack.subscribe(f"tenant-{number}", receiver.url_for(f"/t{number}")))
        worker = stack.worker("worker-1")
        published = stack.publish([(subs[n % 5], order_status_payload(n=n)) for n in range(count)])

        # when it gets SIGTERM while many requests are in flight
        receiver.wait_for(20, timeout=20)
        worker.send(signal.SIGTERM)
        signalled = time.monotonic()
        in_flight_then = len(receiver.requests)
        status = worker.wait(timeout=request_timeout + 5)
        took = time.monotonic() - signalled
        seen_before_exit = receiver.requests

        # then every attempt that reached the receiver is recorded, no job is left
        # running, and after a restart everything succeeds with nothing sent twice
        recorded_before_restart = {
            (row["webhook_id"], str(row["number"]))
            for row in stack.sql(
                "SELECT d.webhook_id, a.number FROM delivery_attempts a"
                " JOIN deliveries d ON d.id = a.delivery_id"
            )
        }
        doing = stack.sql("SELECT count(*) AS n FROM procrastinate_jobs WHERE status = 'doing'")
        stack.worker("worker-2")
        settled = stack.wait_settled(count, timeout=60, final=["SUCCEEDED", "FAILED"])
        requests = receiver.requests

    print(
        f"\nSIGTERM with {in_flight_then} requests received: worker exited {status} after"
        f" {took:.2f} s; {len(seen_before_exit)} attempts made before the exit,"
        f" {len(requests)} in all for {len(published)} deliveries"
    )
    assert status == 0, worker.describe()
    assert took <= request_timeout + 5
    assert doing[0]["n"] == 0
    seen = {(r.header("webhook-id"), r.header("webhook-attempt")) for r in seen_before_exit}
    assert seen <= recorded_before_restart, seen - recorded_before_restart
    assert settled == Counter({"SUCCEEDED": count})
    assert duplicates(requests) == Counter()
    assert len(requests) == count
    assert stack.attempt_gaps() == []
