"""An attempt to a rate-limited subscription waits for its slot: reserved once, in one
statement, by any number of workers at once; a later one is re-queued for it, and that is
neither a failure nor an attempt."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from procrastinate.job_context import JobContext
from procrastinate.jobs import DEFAULT_PRIORITY, Job

from app.core.settings import Settings
from app.delivery.attempt_loads import AttemptLoads
from app.delivery.attempts import make_attempt
from app.delivery.fairness import InFlight
from app.delivery.mailer import OutboxMailer
from app.delivery.metrics import REGISTRY
from app.delivery.notices import EmailSlots
from app.delivery.outgoing import OutgoingDelivery
from app.delivery.pacing import (
    JITTER_ALLOWANCE_SECONDS,
    MAX_MISSED_SLOTS,
    PACED_PRIORITY,
    WakeUps,
    lead_seconds,
    reserve_slot,
    slot_spacing,
)
from app.delivery.worker import WorkerRuntime, build_transport
from app.domain.events import NewEvent
from app.domain.subscriptions import (
    CallbackChecks,
    NewSubscription,
    SubscriptionChanges,
    update_subscription,
)
from app.store.database import WORKER_SCOPE, scoped
from app.store.services import Services
from jobs.delivery import deliver_webhook
from tests.arrivals import busiest_second
from tests.payloads import order_status_payload
from tests.receivers import Receiver, respond
from tests.service import (
    Tenants,
    company_viewer,
    create_subscription_for,
    make_settings,
    publish_event_with,
)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # A retry interval long enough to see that pacing never moves it; the default polling
    # interval, so that the worker test shows the wake-ups keeping paced jobs on time.
    return make_settings(
        database_url, tmp_path, retry_interval_seconds=30.0, poll_interval_seconds=0.5
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


async def owner_rows(services: Services, query: str, *params: Any) -> list[dict[str, Any]]:
    """Rows as the owner reads them (test checks only)."""
    async with services.db.pool.connection() as connection:
        cursor = await connection.execute(query, params)
        names = [column.name for column in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]


async def jobs_of(services: Services, delivery_id: str) -> list[dict[str, Any]]:
    return await owner_rows(
        services,
        "SELECT args, scheduled_at, priority, status, now() AS now FROM procrastinate_jobs"
        " WHERE lock = %s ORDER BY id",
        delivery_id,
    )


async def delivery_row(services: Services, delivery_id: str) -> dict[str, Any]:
    [row] = await owner_rows(
        services,
        "SELECT status, attempt_count, max_attempts, next_attempt_at,"
        " (SELECT count(*) FROM delivery_attempts a WHERE a.delivery_id = d.id) AS attempts"
        " FROM deliveries d WHERE id = %s",
        delivery_id,
    )
    return row


async def limited_subscription(
    services: Services, tenants: Tenants, url: str, per_second: int | None
) -> uuid.UUID:
    subscription, _ = await create_subscription_for(
        services,
        tenants.a,
        NewSubscription(
            "ORDER_STATUS", url, "ops@example.com", max_deliveries_per_second=per_second
        ),
    )
    return subscription.id


async def publish(services: Services, tenants: Tenants, count: int) -> list[str]:
    ids = []
    for number in range(count):
        event = await publish_event_with(
            services, NewEvent(tenants.a, "ORDER_STATUS", order_status_payload(n=number))
        )
        [row] = await services.db.fetch_all(
            "deliveries_of_events", event_ids=[event.id], company_id=None
        )
        ids.append(str(row["id"]))
    return ids


def paced_count(wait: str) -> float:
    value = REGISTRY.get_sample_value("webhooks_attempts_paced_total", {"wait": wait})
    return value or 0.0


async def attempt(services: Services, delivery_id: str, number: int = 1, **options: Any) -> str:
    async with build_transport(services.settings, services, concurrency=5) as transport:
        with scoped(WORKER_SCOPE):
            return await make_attempt(services, transport, delivery_id, 1, number, **options)


async def change_rate(
    services: Services, tenants: Tenants, subscription: uuid.UUID, rate: int | None
) -> None:
    await update_subscription(
        services.db,
        services.secret_box,
        CallbackChecks.of(services.settings, services.resolver),
        company_viewer(tenants.a),
        str(subscription),
        SubscriptionChanges(max_deliveries_per_second=rate),
    )


# --- the reservation ---------------------------------------------------------------------


async def test_workers_reserving_at_once_get_distinct_slots_one_spacing_apart(
    services: Services, tenants: Tenants
) -> None:
    # Given a subscription limited to 50 a second
    subscription = await limited_subscription(services, tenants, "http://127.0.0.1:9/h", 50)

    # When 40 attempts reserve a slot at once (as many workers would)
    with scoped(WORKER_SCOPE):
        reservations = await asyncio.gather(
            *(reserve_slot(services.db, subscription, 50) for _ in range(40))
        )

    # Then no two share one: they follow each other one spacing apart from the first,
    # which is now
    slots = sorted(reservation.slot for reservation in reservations)
    spacing = slot_spacing(50)
    assert slots == [slots[0] + spacing * index for index in range(40)]
    first = min(reservations, key=lambda reservation: reservation.slot)
    assert first.wait_seconds == 0
    assert all(reservation.now <= reservation.slot + spacing for reservation in reservations)


async def test_another_rate_starts_the_slots_afresh_from_now(
    services: Services, tenants: Tenants
) -> None:
    # Given slots reserved a minute ahead at one a second
    subscription = await limited_subscription(services, tenants, "http://127.0.0.1:9/h", 1)
    with scoped(WORKER_SCOPE):
        for _ in range(60):
            later = await reserve_slot(services.db, subscription, 1)
        assert later.wait_seconds > 58

        # When an attempt reserves at another rate (the subscription's was changed)
        changed = await reserve_slot(services.db, subscription, 50)

    # Then it goes now, and the next one a spacing of the new rate later
    assert changed.wait_seconds == 0
    with scoped(WORKER_SCOPE):
        following = await reserve_slot(services.db, subscription, 50)
    assert following.slot - changed.slot == slot_spacing(50)


# --- waiting for a slot is no attempt ------------------------------------------------------


async def test_an_attempt_whose_slot_is_later_is_requeued_for_it_and_is_no_attempt(
    services: Services, tenants: Tenants, receiver: Receiver
) -> None:
    # Given a subscription limited to one delivery a second, and two deliveries to it
    await limited_subscription(services, tenants, receiver.url_for("/one"), 1)
    first, second = await publish(services, tenants, 2)
    before = await delivery_row(services, second)
    requeued = paced_count("requeue")

    # When the first is attempted, and then the second at once
    assert await attempt(services, first) == "succeeded"
    result = await attempt(services, second)

    # Then the second is not sent (but counted as put off), and nothing about it is
    # recorded or used up...
    assert result == "paced"
    assert len(receiver.requests) == 1
    assert paced_count("requeue") == requeued + 1
    assert await delivery_row(services, second) == before
    assert (before["status"], before["attempt_count"], before["max_attempts"]) == ("PENDING", 0, 10)
    assert before["attempts"] == 0
    # ...but the same attempt is queued again (beside the fan-out's job this test ran by
    # hand), holding the slot a second after the first's, due a lead ahead of it, before
    # fresh work
    [fanned_out, paced] = await jobs_of(services, second)
    assert "slot" not in fanned_out["args"]
    slot = datetime.fromisoformat(paced["args"]["slot"])
    assert {key: paced["args"][key] for key in ("delivery_id", "cycle", "attempt")} == {
        "delivery_id": second,
        "cycle": 1,
        "attempt": 1,
    }
    assert "postponed" not in paced["args"]
    assert paced["scheduled_at"] == slot - timedelta(seconds=lead_seconds(1))
    assert 0.8 < (slot - paced["now"]).total_seconds() <= 1.0
    assert paced["priority"] == PACED_PRIORITY > DEFAULT_PRIORITY

    # When the queued job runs, a lead ahead of its slot
    await asyncio.sleep(max(0.0, (paced["scheduled_at"] - datetime.now(UTC)).total_seconds()))
    result = await attempt(services, second, held_slot=slot)

    # Then it waits for its slot, goes without reserving another, and is attempt 1
    assert result == "succeeded"
    arrived = receiver.requests[1]
    assert arrived.received_wall >= slot
    assert arrived.header("webhook-attempt") == "1"
    assert (await delivery_row(services, second))["attempts"] == 1
    assert [job["args"] for job in await jobs_of(services, first)] == [
        {"delivery_id": first, "cycle": 1, "attempt": 1}
    ]


class BusyAfterLoading(AttemptLoads):
    """Loads as the worker does, then keeps the event loop busy for a fifth of a second,
    from 5 ms after the load (a worker whose loop other work holds up)."""

    loaded_at: datetime | None = None

    async def load(self, delivery_id: uuid.UUID) -> OutgoingDelivery | None:
        delivery = await super().load(delivery_id)
        self.loaded_at = delivery.loaded_at if delivery is not None else None
        asyncio.get_running_loop().call_later(0.005, time.sleep, 0.2)
        return delivery


def missed_slots() -> float:
    return REGISTRY.get_sample_value("webhooks_pacing_slots_missed_total") or 0.0


async def a_second_delivery_after_one_sent(
    services: Services, tenants: Tenants, receiver: Receiver
) -> tuple[str, float]:
    """A subscription limited to one a second, its first delivery just sent: the second
    delivery, and the slots missed so far."""
    await limited_subscription(services, tenants, receiver.url_for("/one-a-second"), 1)
    first, second = await publish(services, tenants, 2)
    assert await attempt(services, first) == "succeeded"
    return second, missed_slots()


async def test_an_attempt_taken_too_late_for_its_slot_reserves_the_next_one(
    services: Services, tenants: Tenants, receiver: Receiver
) -> None:
    # Given a subscription limited to one a second whose first delivery was just sent, and
    # the second's job holding a slot that passed a second ago (its worker was busy)
    second, missed = await a_second_delivery_after_one_sent(services, tenants, receiver)

    [first_free] = await owner_rows(services, "SELECT next_slot FROM subscription_pacing")

    # When that job runs
    result = await attempt(services, second, held_slot=datetime.now(UTC) - timedelta(seconds=1))

    # Then it is not sent on its old slot, within a second of the first: it gave that up,
    # reserved the next, a second after the first's, and is queued for it, counting the
    # slot it missed
    assert result == "paced"
    assert len(receiver.requests) == 1
    assert missed_slots() == missed + 1
    [*_, paced] = await jobs_of(services, second)
    assert datetime.fromisoformat(paced["args"]["slot"]) >= first_free["next_slot"]
    assert paced["args"]["missed"] == 1


async def test_an_attempt_that_missed_its_share_of_slots_goes_late_rather_than_never(
    services: Services, tenants: Tenants, receiver: Receiver
) -> None:
    # Given the second delivery's job holding a slot that passed a second ago, after it
    # had given up as many slots as an attempt may (a worker late every time)
    second, missed = await a_second_delivery_after_one_sent(services, tenants, receiver)

    # When that job runs, then it is sent at once, late, and gives up no more
    result = await attempt(
        services,
        second,
        held_slot=datetime.now(UTC) - timedelta(seconds=1),
        missed_slots=MAX_MISSED_SLOTS,
    )
    assert result == "succeeded"
    assert len(receiver.requests) == 2
    assert missed_slots() == missed


async def test_an_attempt_whose_wait_in_place_overruns_reserves_the_next_slot(
    services: Services, tenants: Tenants, receiver: Receiver
) -> None:
    # Given a subscription limited to one a second whose first delivery was just sent, and
    # the second's job holding a slot a moment ahead, taken on time
    second, missed = await a_second_delivery_after_one_sent(services, tenants, receiver)

    # When its wait in place (a lead: the job came early) overruns: the event loop is busy
    # for a fifth of a second from just after its delivery is loaded
    slot = datetime.now(UTC) + timedelta(seconds=0.5)
    loads = BusyAfterLoading(services.db)
    result = await attempt(services, second, held_slot=slot, loads=loads)

    # Then it is not sent late: it gave its slot up and is queued for the next one
    assert loads.loaded_at is not None and loads.loaded_at < slot
    assert result == "paced"
    assert len(receiver.requests) == 1
    assert missed_slots() == missed + 1


async def test_a_paced_attempt_at_its_subscriptions_cap_is_put_off_not_kept_waiting(
    services: Services, tenants: Tenants, receiver: Receiver
) -> None:
    # Given a subscription with a delivery rate, at this worker's cap for it, where an
    # attempt to an unlimited one would wait up to five seconds for a slot of the cap
    subscription = await limited_subscription(services, tenants, receiver.url_for("/cap"), 1000)
    [delivery] = await publish(services, tenants, 1)
    in_flight = InFlight(cap=1, slow_after=5.0)
    assert in_flight.try_acquire(subscription)

    # When its attempt runs, then it is put off at once: sent after a wait for the cap, it
    # would go that much after the rate slot it reserved, with the slots after it
    async with asyncio.timeout(2):
        assert await attempt(services, delivery, in_flight=in_flight) == "postponed"
    assert receiver.requests == []
    # and, refused before it reserved, it used up no slot of the rate
    assert await owner_rows(services, "SELECT * FROM subscription_pacing") == []


async def test_an_attempt_requeued_for_its_slot_tells_fairness_nothing_of_the_endpoint(
    services: Services, tenants: Tenants, receiver: Receiver
) -> None:
    # Given a subscription limited to one a second whose first delivery was just sent,
    # and a worker that has not seen an attempt to it finish (it is unknown there)
    subscription = await limited_subscription(services, tenants, receiver.url_for("/kind"), 1)
    first, second = await publish(services, tenants, 2)
    assert await attempt(services, first) == "succeeded"
    in_flight = InFlight(cap=5, slow_after=5.0)

    # When the second takes its in-flight slot and is re-queued for its rate slot
    assert await attempt(services, second, in_flight=in_flight) == "paced"

    # Then its in-flight slot is free again, and no request made it look fast (proven)
    assert in_flight.count(subscription) == 0
    assert in_flight.kind(subscription) == "unknown"


async def test_a_retry_waits_for_a_slot_keeping_its_number_and_its_schedule(
    services: Services, tenants: Tenants, receiver: Receiver
) -> None:
    # Given a subscription limited to one a second whose receiver failed attempt 1
    receiver.script("/fails", [respond(500), respond(200)])
    await limited_subscription(services, tenants, receiver.url_for("/fails"), 1)
    [delivery] = await publish(services, tenants, 1)
    assert await attempt(services, delivery) == "retrying"
    before = await delivery_row(services, delivery)
    [_, retry] = await jobs_of(services, delivery)

    # When attempt 2 runs within the second of attempt 1's slot (its retry came due early:
    # a redelivery, a short interval)
    result = await attempt(services, delivery, 2)

    # Then it waits for its slot as attempt 2: the retry's schedule, its number and the
    # ten attempts are as attempt 1 left them
    assert result == "paced"
    assert await delivery_row(services, delivery) == before
    assert before["status"] == "RETRYING" and before["attempt_count"] == 1
    assert retry["scheduled_at"] == before["next_attempt_at"]
    [*_, paced] = await jobs_of(services, delivery)
    assert paced["args"]["attempt"] == 2
    assert len(receiver.requests) == 1


async def test_a_subscription_without_a_rate_reserves_nothing(
    services: Services, tenants: Tenants, receiver: Receiver
) -> None:
    await limited_subscription(services, tenants, receiver.url_for("/free"), None)
    deliveries = await publish(services, tenants, 3)

    results = [await attempt(services, delivery) for delivery in deliveries]

    assert results == ["succeeded"] * 3
    assert await owner_rows(services, "SELECT * FROM subscription_pacing") == []


@pytest.mark.parametrize(
    ("runs", "result", "reserved"),
    [(0, "succeeded", False), (1, "paced", True)],
    ids=["first-run", "run-again"],
)
async def test_a_paced_job_run_again_by_procrastinate_reserves_a_new_slot(
    services: Services,
    tenants: Tenants,
    receiver: Receiver,
    runs: int,
    result: str,
    reserved: bool,
) -> None:
    # Given a delivery queued for its slot a second from now (one a second)
    await limited_subscription(services, tenants, receiver.url_for("/j"), 1)
    first, second = await publish(services, tenants, 2)
    assert [await attempt(services, first), await attempt(services, second)] == [
        "succeeded",
        "paced",
    ]
    [*_, paced] = await jobs_of(services, second)
    before = await owner_rows(services, "SELECT next_slot FROM subscription_pacing")

    # When the delivery task runs its job a lead ahead of the slot: as queued, or after
    # Procrastinate ran it before (it failed, or its worker died: the slot may be gone)
    await asyncio.sleep(max(0.0, (paced["scheduled_at"] - datetime.now(UTC)).total_seconds()))
    async with build_transport(services.settings, services, concurrency=5) as transport:
        runtime = WorkerRuntime(
            services=services,
            transport=transport,
            mailer=OutboxMailer(Path(services.settings.data_dir) / "outbox"),
            in_flight=InFlight(cap=5),
            email_slots=EmailSlots(1),
            wake_ups=WakeUps(lambda: asyncio.sleep(0)),
            loads=AttemptLoads(services.db),
        )
        job = Job(
            id=1,
            queue="deliveries",
            lock=second,
            queueing_lock=None,
            task_name="deliver_webhook",
            task_kwargs=paced["args"],
            attempts=runs,
        )
        context = JobContext(
            app=services.queue,
            job=job,
            start_timestamp=time.time(),
            additional_context={"runtime": runtime},
            abort_reason=lambda: None,
        )
        outcome = await deliver_webhook(context, **paced["args"])

    # Then the first run goes at the slot it holds; a run again takes a new one
    assert outcome == result
    after = await owner_rows(services, "SELECT next_slot FROM subscription_pacing")
    assert (after != before) is reserved


# --- a change of the rate ---------------------------------------------------------------


@pytest.mark.parametrize("new_rate", [50, None], ids=["raised", "removed"])
async def test_a_new_rate_hands_the_waiting_attempts_new_slots(
    services: Services, tenants: Tenants, receiver: Receiver, new_rate: int | None
) -> None:
    # Given three deliveries to a subscription limited to one a second: two wait for slots
    subscription = await limited_subscription(services, tenants, receiver.url_for("/r"), 1)
    deliveries = await publish(services, tenants, 3)
    assert [await attempt(services, delivery) for delivery in deliveries] == [
        "succeeded",
        "paced",
        "paced",
    ]

    # When its rate is changed
    await change_rate(services, tenants, subscription, new_rate)

    # Then the waiting attempts are due now, as fresh work holding no slot...
    for delivery in deliveries[1:]:
        [*_, waiting] = await jobs_of(services, delivery)
        assert "slot" not in waiting["args"]
        assert waiting["scheduled_at"] <= waiting["now"]
        assert waiting["priority"] == DEFAULT_PRIORITY
    # ...and each goes at once under the new rate
    assert [await attempt(services, delivery) for delivery in deliveries[1:]] == [
        "succeeded",
        "succeeded",
    ]
    assert len(receiver.requests) == 3


@pytest.mark.parametrize(
    "changes",
    [[None, 1], [50, 1], [2, 1]],
    ids=["removed-and-set-again", "raised-and-back", "doubled-and-back"],
)
async def test_a_rate_changed_back_before_any_attempt_starts_its_pacing_afresh(
    services: Services, tenants: Tenants, receiver: Receiver, changes: list[int | None]
) -> None:
    # Given four deliveries to a subscription limited to one a second: three wait for
    # slots, the last of them three seconds away
    subscription = await limited_subscription(services, tenants, receiver.url_for("/b"), 1)
    deliveries = await publish(services, tenants, 4)
    assert [await attempt(services, delivery) for delivery in deliveries] == [
        "succeeded",
        *["paced"] * 3,
    ]

    # When its rate is changed and changed back before any attempt runs at the other one
    for rate in changes:
        await change_rate(services, tenants, subscription, rate)

    # Then its pacing is forgotten in the transaction that changed it...
    assert await owner_rows(services, "SELECT * FROM subscription_pacing") == []
    # ...so the waiting attempts start from now at one a second: the first goes at once,
    # the next a second after it, not behind the three slots the old pacing had given out
    assert await attempt(services, deliveries[1]) == "succeeded"
    assert await attempt(services, deliveries[2]) == "paced"
    [*_, paced] = await jobs_of(services, deliveries[2])
    wait = (datetime.fromisoformat(paced["args"]["slot"]) - paced["now"]).total_seconds()
    assert 0.5 < wait <= 1.0


async def test_only_a_change_of_the_rate_restarts_the_pacing(
    services: Services, tenants: Tenants, receiver: Receiver
) -> None:
    # Given a subscription limited to one a second with an attempt waiting for its slot
    subscription = await limited_subscription(services, tenants, receiver.url_for("/s"), 1)
    deliveries = await publish(services, tenants, 2)
    assert [await attempt(services, delivery) for delivery in deliveries] == ["succeeded", "paced"]
    before = await owner_rows(services, "SELECT * FROM subscription_pacing")

    # When it is updated to the rate it has
    await change_rate(services, tenants, subscription, 1)

    # Then its pacing stays, and the waiting attempt keeps its slot
    assert await owner_rows(services, "SELECT * FROM subscription_pacing") == before
    [*_, waiting] = await jobs_of(services, deliveries[1])
    assert "slot" in waiting["args"]


# --- with the real worker -----------------------------------------------------------------


async def test_the_worker_spreads_a_burst_at_the_rate(
    services: Services, tenants: Tenants, receiver: Receiver, worker: asyncio.Task[None]
) -> None:
    # Given the real worker polling at the default interval (half a second: paced jobs
    # found by polling would go in bunches), and a subscription limited to 20 a second
    await limited_subscription(services, tenants, receiver.url_for("/burst"), 20)

    # When 40 events are published at once
    started = time.monotonic()
    await publish(services, tenants, 40)
    requests = await receiver.wait_for_async(40, timeout=10)

    # Then no second holds more than 20 (+1), the burst takes about 39 / 20 s, and each
    # arrived once as attempt 1
    moments = [request.received_at for request in requests]
    assert busiest_second(moments) <= 21
    assert 1.9 <= moments[-1] - moments[0] <= 3.0
    assert moments[0] - started < 1.0
    assert len({request.header("webhook-id") for request in requests}) == 40
    assert {request.header("webhook-attempt") for request in requests} == {"1"}


async def test_a_raised_rate_sends_the_waiting_attempts_at_its_spacing(
    services: Services, tenants: Tenants, receiver: Receiver, worker: asyncio.Task[None]
) -> None:
    # Given the real worker and a subscription limited to two a second, six deliveries
    # published at once: the first sent, five waiting for slots up to 2.5 s away
    subscription = await limited_subscription(services, tenants, receiver.url_for("/up"), 2)
    deliveries = await publish(services, tenants, 6)
    await receiver.wait_for_async(1, timeout=5)

    async def all_queued_for_slots() -> bool:
        for delivery in deliveries[1:]:
            jobs = await jobs_of(services, delivery)
            if not any(job["status"] == "todo" and "slot" in job["args"] for job in jobs):
                return False
        return True

    deadline = time.monotonic() + 5
    while not await all_queued_for_slots():
        assert time.monotonic() < deadline, "the waiting attempts were never queued for slots"
        await asyncio.sleep(0.02)

    # When its rate is raised to five a second
    await change_rate(services, tenants, subscription, 5)
    raised = time.monotonic()

    # Then the five go out at the new spacing, not at the old schedule: the last within
    # 1.5 s of the change (the old slots ran to 2.5 s), spread over four spacings of the
    # new rate (within the jitter the pacing allows for)
    requests = await receiver.wait_for_async(6, timeout=5)
    moments = [request.received_at for request in requests[1:]]
    assert moments[-1] - raised < 1.5
    spread = 4 * slot_spacing(5).total_seconds()
    assert spread - JITTER_ALLOWANCE_SECONDS <= moments[-1] - moments[0] < spread + 0.5
    assert busiest_second(moments) <= 6
    assert {request.header("webhook-attempt") for request in requests} == {"1"}
