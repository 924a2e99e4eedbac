"""A subscription's delivery rate, kept by two real ``webhooks worker`` processes together
and measured where it matters: at the receiver, over every one-second window."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from app.core.secret_box import generate_key
from app.domain import companies
from app.domain.events import NewEvent
from app.domain.subscriptions import NewSubscription
from app.store.services import Services, open_services
from bench.processes import Receiver as ReceiverProcess
from tests.acceptance.processes import (
    Processes,
    service_environment,
    wait_for_listeners,
    wait_until,
)
from tests.arrivals import busiest_second
from tests.payloads import order_status_payload
from tests.receivers import Receiver
from tests.service import create_subscription_for, make_settings, publish_event_with

RATE = 50
EVENTS = 500
# Any one-second window at the receiver holds at most RATE + TOLERANCE requests: slots are
# 1/RATE apart, so a closed window may hold one more, or a window where a slot went a
# little late next to one on time.
TOLERANCE = 1
PUBLISHERS = 8  # concurrent in-process publishes (the services' pool holds 10 connections)
# Another company's events, one every PROBE_EVERY seconds while the limited one is paced.
PROBES = 12
PROBE_EVERY = 0.5
PROBE_LATENCY = 1.0


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path / "logs") as started:
        yield started


@pytest.fixture
def paced_receiver(tmp_path: Path) -> Iterator[ReceiverProcess]:
    """The limited subscription's receiver, in a process of its own: this one publishes
    the burst, and its CPU would delay the arrival times of a receiver thread beside it."""
    with ReceiverProcess(tmp_path / "logs" / "receiver.log") as started:
        yield started


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


async def publish_burst(services: Services, company: str, count: int) -> None:
    publishing = asyncio.Semaphore(PUBLISHERS)

    async def publish_one(number: int) -> None:
        async with publishing:
            payload = order_status_payload(n=number)
            await publish_event_with(services, NewEvent(company, "ORDER_STATUS", payload))

    await asyncio.gather(*(publish_one(number) for number in range(count)))


async def probe_latencies(services: Services, company: str, receiver: Receiver) -> list[float]:
    """Publish one event at a time to ``company`` and time each until it is received."""
    latencies = []
    for number in range(PROBES):
        started = time.monotonic()
        await publish_event_with(
            services, NewEvent(company, "ORDER_STATUS", order_status_payload(n=number))
        )
        [*_, received] = await receiver.wait_for_async(number + 1, timeout=10)
        latencies.append(received.received_at - started)
        await asyncio.sleep(max(0.0, started + PROBE_EVERY - time.monotonic()))
    return latencies


def fresh_jobs(database_url: str) -> int:
    """Delivery jobs queued for now (first attempts), not for a slot or a retry."""
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM procrastinate_jobs"
            " WHERE queue_name = 'deliveries' AND status = 'todo' AND scheduled_at IS NULL"
        ).fetchone()
    return -1 if row is None else int(row[0])


def records_of(receiver: ReceiverProcess, count: int) -> list[list[object]]:
    """The receiver's records (arrival, webhook-id, attempt, subject) once it has ``count``."""

    def check() -> list[list[object]] | None:
        records: list[list[object]] = receiver.stats()["records"]
        return records if len(records) >= count else None

    return wait_until(check, timeout=40, interval=0.2, message=f"fewer than {count} requests")


@pytest.mark.slow
async def test_500_events_to_a_subscription_limited_to_50_a_second(
    database_url: str,
    tmp_path: Path,
    paced_receiver: ReceiverProcess,
    receiver: Receiver,
    processes: Processes,
) -> None:
    # given two worker processes, polling at the default interval (the wake-ups at the
    # slots, not a fast poll, keep them punctual), a subscription limited to 50 a second,
    # and another company's subscription without a limit
    secret_key = generate_key()
    env = service_environment(
        database_url, tmp_path / "data", secret_key, WEBHOOKS_POLL_INTERVAL_SECONDS="0.5"
    )
    processes.worker(env, name="worker-1")
    processes.worker(env, name="worker-2")
    settings = make_settings(database_url, tmp_path / "data", secret_key=secret_key)
    async with open_services(settings) as services:
        for company in ("company-a", "company-b"):
            await companies.create_company(services.db, company, company)
        limited, _ = await create_subscription_for(
            services,
            "company-a",
            NewSubscription(
                "ORDER_STATUS",
                paced_receiver.url("/record"),
                "ops@example.com",
                max_deliveries_per_second=RATE,
            ),
        )
        await create_subscription_for(
            services,
            "company-b",
            NewSubscription("ORDER_STATUS", receiver.url_for("/other"), "ops@example.com"),
        )
        wait_for_listeners(database_url, 2, processes=processes)

        # when 500 events are published to the limited one at once, and the other gets
        # one event every half second while they are paced (from the moment each of the
        # 500 went or waits for its slot: until then the burst's first attempts are fresh
        # work, ahead of the other's as an unlimited burst's would be)
        started = time.monotonic()
        await publish_burst(services, "company-a", EVENTS)
        published = time.monotonic() - started
        await asyncio.to_thread(wait_until, lambda: fresh_jobs(database_url) == 0, timeout=20)
        paced_after = time.monotonic() - started
        latencies = await probe_latencies(services, "company-b", receiver)
        records = await asyncio.to_thread(records_of, paced_receiver, EVENTS)

    # then the limited receiver never sees more than 50 (+1) in any one-second window...
    moments = sorted(float(arrival) for arrival, *_ in records)  # type: ignore[arg-type]
    span = moments[-1] - moments[0]
    per_second = Counter(int(moment - moments[0]) for moment in moments)
    print(
        f"{EVENTS} events published in {published:.2f} s, all paced after {paced_after:.2f} s;"
        f" received over {span:.2f} s; busiest"
        f" one-second window {busiest_second(moments)}; per second "
        f"{[per_second[second] for second in sorted(per_second)]}; other subscription's "
        f"latencies {', '.join(f'{latency * 1000:.0f}' for latency in latencies)} ms"
    )
    assert busiest_second(moments) <= RATE + TOLERANCE
    # ...so the burst is spread over about 500 / 50 s (the first goes at once)
    assert 9.0 <= span <= 20.0
    # ...while the other subscription's deliveries kept their latency
    assert max(latencies) < PROBE_LATENCY, latencies

    # and each delivery arrived once, as its first attempt: waiting for a slot is no attempt
    assert len(records) == EVENTS
    assert len({webhook_id for _, webhook_id, *_ in records}) == EVENTS
    assert {attempt for _, _, attempt, _ in records} == {1}

    def settled() -> bool:
        with psycopg.connect(database_url) as connection:
            row = connection.execute(
                "SELECT count(*) FROM deliveries WHERE status <> 'SUCCEEDED'"
            ).fetchone()
        return row == (0,)

    wait_until(settled, timeout=15, interval=0.1, message=lambda: processes.describe())
    with psycopg.connect(database_url) as connection:
        attempts = connection.execute(
            "SELECT count(*), max(a.number), max(d.attempt_count) FROM delivery_attempts a"
            " JOIN deliveries d ON d.id = a.delivery_id WHERE d.subscription_id = %s",
            (limited.id,),
        ).fetchone()
    assert attempts == (EVENTS, 1, 1)
    for process in processes.started:
        assert process.returncode is None, process.describe()
