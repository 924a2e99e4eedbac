"""Receivers that misbehave at scale: hung endpoints must not starve healthy ones, and
chaotic ones (500s, timeouts, resets, redirects) end every delivery in a known state.

Real ``webhooks worker`` processes, real receivers on 127.0.0.1, aiosmtpd for the emails,
and a PostgreSQL owned by this module.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from itertools import pairwise

import pytest

from tests.acceptance.processes import wait_until
from tests.faults.harness import (  # noqa: F401 -- the fixtures
    Published,
    Stack,
    delivery_ids_in,
    duplicates,
    owned_postgres_fixture,
    percentile,
    stack_fixture,
    summary,
)
from tests.payloads import order_status_payload
from tests.receivers import (
    Receiver,
    RecordedRequest,
    Reply,
    black_hole,
    hang,
    redirect,
    reset_connection,
    respond,
)
from tests.smtp import ReceivedMail, SmtpTestServer


def test_a_hung_endpoint_does_not_starve_a_healthy_one(stack: Stack) -> None:
    # given one worker (50 slots) and two companies: one whose endpoint hangs until the
    # request timeout, one whose endpoint answers at once
    count, timeout = 200, 5.0
    stack.configure(WEBHOOKS_REQUEST_TIMEOUT_SECONDS=timeout, WEBHOOKS_WORKER_CONCURRENCY=50)
    with Receiver() as receiver:
        receiver.script("/slow", hang(timeout * 3))
        stack.company("slowco")
        stack.company("quickco")
        slow = stack.subscribe("slowco", receiver.url_for("/slow"))
        quick = stack.subscribe("quickco", receiver.url_for("/quick"))
        stack.worker()

        # when 200 deliveries to each are published, interleaved, 50 a second
        plan = [(sub, order_status_payload(n=n)) for n in range(count) for sub in (slow, quick)]
        started = time.monotonic()
        published = stack.run(stack.publish_async(plan, pace=0.02))
        quick_requests = receiver.wait_for(count, timeout=60, path="/quick")
        all_quick_at = time.monotonic()
        slow_open = stack.sql(
            "SELECT count(*) AS n FROM deliveries WHERE subscription_id = %(id)s"
            " AND status IN ('PENDING', 'RETRYING')",
            id=slow.id,
        )[0]["n"]
        slow_seen = len(receiver.requests_to("/slow"))
        # every postponement re-queues a job: what the fairness cap costs in queue traffic
        jobs_queued = stack.sql("SELECT last_value AS n FROM procrastinate_jobs_id_seq")[0]["n"]

    # then every healthy delivery arrived promptly while the hung ones were still waiting
    published_at = {
        p.webhook_id: p.published_at for p in published if p.subscription_id == quick.id
    }
    latencies = [
        request.received_at - published_at[request.header("webhook-id") or ""]
        for request in quick_requests
    ]
    print(
        f"\n{count} healthy deliveries interleaved with {count} to an endpoint hanging"
        f" {timeout:g} s: all healthy ones arrived {all_quick_at - started:.1f} s after the first"
        f" publish; latency (publish -> arrival) {summary(latencies)}; by then the hung"
        f" endpoint had {slow_seen} requests and {slow_open} deliveries still open;"
        f" {jobs_queued} jobs queued for {2 * count} deliveries (postponements)"
    )
    assert len(latencies) == count
    assert slow_open > 0
    assert percentile(latencies, 0.99) < 2.0


def latencies_of(published: list[Published], requests: list[RecordedRequest]) -> list[float]:
    """Publish -> arrival, per delivery, for the requests received."""
    published_at = {p.webhook_id: p.published_at for p in published}
    return [
        request.received_at - published_at[request.header("webhook-id") or ""]
        for request in requests
        if (request.header("webhook-id") or "") in published_at
    ]


# delivery jobs never taken yet (a postponed or retried attempt is scheduled)
FRESH_JOBS = (
    "SELECT count(*) AS n FROM procrastinate_jobs"
    " WHERE status = 'todo' AND scheduled_at IS NULL AND queue_name = 'deliveries'"
)


@pytest.mark.parametrize("hung", [5, 20])
def test_hung_endpoints_leave_healthy_deliveries_their_latency_however_many_there_are(
    stack: Stack, hung: int
) -> None:
    # given one worker (50 slots, a fifth of them per subscription), a 3 s request timeout,
    # three healthy subscriptions, and `hung` subscriptions whose address drops every SYN
    timeout, healthy_count, per_hung, rounds = 3.0, 3, 20, 30
    stack.configure(WEBHOOKS_REQUEST_TIMEOUT_SECONDS=timeout, WEBHOOKS_WORKER_CONCURRENCY=50)
    with Receiver() as receiver, black_hole() as dead:
        healthy = []
        for number in range(healthy_count):
            stack.company(f"healthy-{number}")
            healthy.append(stack.subscribe(f"healthy-{number}", receiver.url_for(f"/h{number}")))
        dead_subs = []
        for number in range(hung):
            stack.company(f"dead-{number}")
            dead_subs.append(stack.subscribe(f"dead-{number}", f"{dead}/d{number}"))
        stack.worker()

        # and the healthy latency with nothing hanging, measured first
        def healthy_round(tag: str) -> list[float]:
            plan = [
                (sub, order_status_payload(tag=tag, n=n)) for n in range(rounds) for sub in healthy
            ]
            expected = len(receiver.requests) + len(plan)
            published = stack.run(stack.publish_async(plan, pace=0.05))
            receiver.wait_for(expected, timeout=60)
            return latencies_of(published, receiver.requests)

        baseline = healthy_round("baseline")

        # when each hung subscription gets a backlog of deliveries, the worker has taken
        # each of them once (the healthy ones would otherwise wait behind older jobs in
        # the queue, not for a slot), and the healthy ones keep publishing for a while
        # longer than a request timeout
        stack.publish(
            [(sub, order_status_payload(n=n)) for n in range(per_hung) for sub in dead_subs]
        )
        wait_until(
            lambda: stack.sql(FRESH_JOBS)[0]["n"] == 0, timeout=120, message="fresh jobs left"
        )
        loaded = healthy_round("loaded")
        dead_attempts = stack.sql(
            "SELECT count(*) AS n, count(*) FILTER (WHERE a.error LIKE '%%timed out%%') AS timeouts"
            " FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id"
            " WHERE d.subscription_id = ANY(%(ids)s::uuid[])",
            ids=[sub.id for sub in dead_subs],
        )[0]

    # then the healthy deliveries arrived as promptly as before: no waiting for a slot
    # that a hung attempt holds until its timeout
    print(
        f"\n{hung} subscriptions dropping SYNs ({hung * per_hung} deliveries, timeout"
        f" {timeout:g} s): healthy latency alone {summary(baseline)}; beside them"
        f" {summary(loaded)}; {dead_attempts['n']} attempts to them, {dead_attempts['timeouts']}"
        " timed out"
    )
    assert len(baseline) == len(loaded) == healthy_count * rounds
    assert dead_attempts["n"] > 0 and dead_attempts["timeouts"] == dead_attempts["n"]
    assert percentile(loaded, 0.99) < timeout / 4
    assert percentile(loaded, 0.5) < 3 * percentile(baseline, 0.5) + 0.05
    assert stack.attempt_gaps() == []


# app.delivery.worker.recover's log line when it re-queues deliveries whose job was lost
REQUEUED_LOST = re.compile(r"re-queued [1-9][0-9]* lost deliveries")
CHAOS = (("200", 0.40), ("500", 0.20), ("timeout", 0.15), ("reset", 0.15), ("301", 0.10))


def chaos(seed: int) -> Callable[[RecordedRequest], Reply]:
    """A reply drawn from :data:`CHAOS`, seeded per webhook-id and attempt number."""
    kinds = [kind for kind, _ in CHAOS]
    weights = [weight for _, weight in CHAOS]

    def reply(request: RecordedRequest) -> Reply:
        key = f"{seed}:{request.header('webhook-id')}:{request.header('webhook-attempt')}"
        [kind] = random.Random(key).choices(kinds, weights=weights)
        if kind == "500":
            return respond(500)
        if kind == "timeout":
            return hang(2.0)
        if kind == "reset":
            return reset_connection()
        if kind == "301":
            return redirect("/elsewhere")
        return respond(200)

    return reply


def test_chaotic_receivers_end_every_delivery_succeeded_or_failed_and_reported(
    stack: Stack,
) -> None:
    # given 1,000 deliveries over ten subscriptions whose endpoints answer 200, 500,
    # time out, reset the connection or redirect, at random (seeded)
    count, companies, max_attempts, interval, timeout = 1000, 10, 4, 0.3, 0.5
    stack.configure(
        WEBHOOKS_MAX_ATTEMPTS=max_attempts,
        WEBHOOKS_RETRY_INTERVAL_SECONDS=interval,
        WEBHOOKS_REQUEST_TIMEOUT_SECONDS=timeout,
        WEBHOOKS_POLL_INTERVAL_SECONDS=0.1,
        WEBHOOKS_EMAIL_WINDOW_SECONDS=0,
        WEBHOOKS_WORKER_CONCURRENCY=50,
    )
    with Receiver() as receiver, SmtpTestServer() as smtp:
        stack.configure(WEBHOOKS_SMTP_URL=smtp.url)
        subs = []
        for number in range(companies):
            receiver.script(f"/c{number}", chaos(seed=number))
            stack.company(f"chaos-{number}")
            subs.append(stack.subscribe(f"chaos-{number}", receiver.url_for(f"/c{number}")))
        worker = stack.worker()

        # when they are published
        started = time.monotonic()
        stack.publish([(subs[n % companies], order_status_payload(n=n)) for n in range(count)])
        settled = stack.wait_settled(count, timeout=120, final=["SUCCEEDED", "FAILED"])
        took = time.monotonic() - started
        failed = {
            row["id"]
            for row in stack.sql("SELECT id::text AS id FROM deliveries WHERE status = 'FAILED'")
        }
        # every email job has run (wait_settled saw no open job); the last one may still
        # be on its way through SMTP
        wait_until(
            lambda: reported_count(smtp) >= len(failed), timeout=15, message=lambda: "emails"
        )
        requests = receiver.requests

    # then each ended SUCCEEDED or FAILED within the attempt limit, attempts spaced by
    # the interval, each failure reported exactly once
    attempts = stack.sql(
        "SELECT d.id::text AS id, d.status, d.attempt_count, a.number, a.started_at,"
        " a.duration_ms, a.response_status, a.error"
        " FROM deliveries d JOIN delivery_attempts a ON a.delivery_id = d.id"
        " ORDER BY d.id, a.number"
    )
    outcomes = Counter(
        str(row["response_status"])
        if row["response_status"] is not None
        else ("timeout" if "timed out" in (row["error"] or "") else "no response")
        for row in attempts
    )
    spacing_errors: list[tuple[str, int, float]] = []
    tightest, loosest = float("inf"), 0.0
    for previous, current in pairwise(attempts):
        if previous["id"] != current["id"]:
            continue
        ready_at = previous["started_at"] + timedelta(
            milliseconds=previous["duration_ms"], seconds=interval
        )
        slack = (current["started_at"] - ready_at).total_seconds()
        tightest, loosest = min(tightest, slack), max(loosest, slack)
        if slack < -0.01:
            spacing_errors.append((current["id"], current["number"], slack))
    reported = Counter(
        delivery_id for mail in smtp.messages for delivery_id in delivery_ids_in(body_of(mail))
    )
    per_delivery = Counter(row["id"] for row in attempts)
    print(
        f"\n{count} deliveries to chaotic receivers settled in {took:.1f} s: {dict(settled)};"
        f" {len(attempts)} attempts {dict(outcomes)}; {len(requests)} requests;"
        f" next attempt {tightest * 1000:.0f} ms to {loosest:.1f} s after the interval;"
        f" {len(smtp.messages)} emails reporting {sum(reported.values())} deliveries"
    )
    assert settled["SUCCEEDED"] + settled["FAILED"] == count
    assert stack.attempt_gaps() == []
    assert max(per_delivery.values()) <= max_attempts
    assert all(
        row["attempt_count"] == max_attempts for row in attempts if row["status"] == "FAILED"
    )
    assert spacing_errors == []
    # Each next attempt is queued with the outcome: none may have needed the maintenance
    # loop's safety net for lost jobs (which steps in once one is 30 s overdue).
    assert REQUEUED_LOST.findall(worker.log()) == []
    assert set(reported) == failed
    assert [key for key, n in reported.items() if n != 1] == []
    assert duplicates(requests) == Counter()
    assert len(requests) == len(attempts)
    assert {"200", "500", "301", "timeout", "no response"} <= set(outcomes)


def body_of(mail: ReceivedMail) -> str:
    part = mail.message.get_body(preferencelist=("plain",))
    return str(part.get_content()) if part is not None else ""


def reported_count(smtp: SmtpTestServer) -> int:
    return sum(len(delivery_ids_in(body_of(mail))) for mail in smtp.messages)
