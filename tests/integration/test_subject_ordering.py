"""Ordered delivery per subject, end to end: the real worker, real receivers, GraphQL.

On a PER_SUBJECT subscription the deliveries of one subject (the order id) go strictly in
publish order, each numbered in the ``webhook-sequence`` header; a later one is HELD until
every earlier one has ended (SUCCEEDED, FAILED for good, CANCELLED), whatever ended it.
Other subjects and other subscriptions never wait. Every scenario ends by checking the
queues' bookkeeping: each queue counts exactly its queued open deliveries, and no HELD
delivery is left without one being sent before it.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from app.delivery.attempts import give_up
from app.delivery.worker import recover
from app.domain.retention import purge_old_data
from app.store.database import WORKER_SCOPE, scoped
from app.store.queue import AttemptJob, defer_attempts
from tests.delivery import (
    OpenService,
    Raised,
    Service,
    Subscription,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
    verify,
)
from tests.payloads import order_status_payload
from tests.receivers import Receiver, RecordedRequest, Reply, respond

CREATE = """
mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) {
    subscription { id ordering }
    signingSecret
    userErrors { field code message }
  }
}"""
UPDATE = """
mutation($input: UpdateWebhookSubscriptionInput!) {
  updateWebhookSubscription(input: $input) {
    subscription { id ordering isActive }
    userErrors { field code message }
  }
}"""
DELETE = "mutation($id: ID!) { deleteWebhookSubscription(id: $id) { deletedId } }"
REDELIVER = """
mutation($id: ID!) {
  redeliver(deliveryId: $id) { delivery { id status cycle sequence } userErrors { code message } }
}"""
QUEUED = """
query($id: ID!) {
  delivery(id: $id) {
    id status sequence attemptCount event { subject }
    waitingFor { id status sequence }
  }
}"""

# The queues' bookkeeping, which every test checks last.
MISCOUNTED_QUEUES = """
SELECT q.subscription_id, q.subject, q.open_count, count(d.id) AS queued
FROM subject_queues q
LEFT JOIN deliveries d
  ON d.subscription_id = q.subscription_id AND d.subject = q.subject AND d.in_queue
GROUP BY q.subscription_id, q.subject, q.open_count
HAVING q.open_count <> count(d.id)"""
STRANDED_HELD = """
SELECT h.id FROM deliveries h
WHERE h.status = 'HELD' AND NOT EXISTS (
    SELECT 1 FROM deliveries d
    WHERE d.subscription_id = h.subscription_id AND d.subject = h.subject AND d.in_queue
      AND d.status IN ('PENDING', 'RETRYING'))"""


def order(order_id: int, n: int) -> dict[str, Any]:
    """Event ``n`` of an order: its subject is the order id (the catalogue derives it)."""
    return order_status_payload(order_id=order_id, n=n)


def n_of(request: RecordedRequest) -> int:
    return int(request.json()["data"]["n"])


def sequence_of(request: RecordedRequest) -> int | None:
    value = request.header("webhook-sequence")
    return None if value is None else int(value)


async def subscribe(
    service: Service, url: str, ordering: str | None = "PER_SUBJECT", **fields: Any
) -> Subscription:
    data = await service.api.data(
        CREATE,
        {
            "input": {
                "webhook": "ORDER_STATUS",
                "callbackUrl": url,
                "notificationEmail": "ops@company-a.example",
                "ordering": ordering,
                **fields,
            }
        },
        key=service.tenants.key_a,
    )
    created = data["createWebhookSubscription"]
    assert created["userErrors"] == [], created["userErrors"]
    return Subscription(created["subscription"]["id"], created["signingSecret"], url)


async def publish(service: Service, order_id: int, n: int) -> str:
    """Publish event ``n`` of an order (subject derived); returns its delivery's id."""
    return await service.publish(order(order_id, n), subject=None)


async def queued(service: Service, delivery_id: str) -> dict[str, Any]:
    data = await service.api.data(QUEUED, {"id": delivery_id}, key=service.tenants.key_a)
    delivery: dict[str, Any] = data["delivery"]
    return delivery


async def update(service: Service, subscription_id: str, **fields: Any) -> dict[str, Any]:
    data = await service.api.data(
        UPDATE, {"input": {"id": subscription_id, **fields}}, key=service.tenants.key_a
    )
    updated: dict[str, Any] = data["updateWebhookSubscription"]
    assert updated["userErrors"] == [], updated["userErrors"]
    return updated


async def assert_queues_consistent(service: Service) -> None:
    assert await service.sql(MISCOUNTED_QUEUES) == []
    assert await service.sql(STRANDED_HELD) == []


async def statuses(service: Service, delivery_ids: list[str]) -> list[str]:
    return [(await service.delivery(id_))["status"] for id_ in delivery_ids]


async def open_jobs(service: Service, delivery_id: str) -> int:
    rows = await service.sql(
        "SELECT count(*) AS n FROM procrastinate_jobs"
        " WHERE lock = %(id)s AND status IN ('todo', 'doing')",
        id=delivery_id,
    )
    return int(rows[0]["n"])


async def test_later_events_of_an_order_wait_while_its_first_is_retried_and_others_pass(
    open_service: OpenService,
) -> None:
    # Given an ordered subscription whose receiver fails order 1001's first event twice
    service = await open_service(retry_interval_seconds=1.5)
    with Receiver() as receiver:
        failed_first: list[int] = []

        def reply(request: RecordedRequest) -> Reply:
            if request.json()["subject"] == "1001" and n_of(request) == 1 and len(failed_first) < 2:
                failed_first.append(1)
                return respond(500)
            return respond(200)

        receiver.script("/hook", reply)
        subscription = await subscribe(service, receiver.url_for("/hook"))

        # When three events of order 1001 are published, then two of order 1002
        first, second, third = [await publish(service, 1001, n) for n in (1, 2, 3)]
        other = [await publish(service, 1002, n) for n in (1, 2)]

        # Then order 1002's go through while 1001's first is being retried, and 1001's
        # later ones are HELD, waiting for it
        for delivery_id in other:
            await service.wait_for_status(delivery_id, "SUCCEEDED")
        meanwhile = [await queued(service, id_) for id_ in (first, second, third)]
        for delivery_id in (first, second, third):
            await service.wait_for_status(delivery_id, "SUCCEEDED", timeout=10)
        requests = receiver.requests_to("/hook")

    assert meanwhile[0]["status"] == "RETRYING"
    assert [(d["status"], d["sequence"]) for d in meanwhile[1:]] == [("HELD", 2), ("HELD", 3)]
    head = {"id": first, "status": "RETRYING", "sequence": 1}
    assert [d["waitingFor"] for d in meanwhile] == [None, head, head]
    # the receiver saw each order's events in publish order, numbered 1, 2, 3 per order,
    # the first one three times (two failures, then success)
    seen: dict[str, list[tuple[int, int | None, str | None]]] = defaultdict(list)
    for request in requests:
        verify(request, subscription.secret)
        seen[request.json()["subject"]].append(
            (n_of(request), sequence_of(request), request.header("webhook-attempt"))
        )
    assert seen["1001"] == [(1, 1, "1"), (1, 1, "2"), (1, 1, "3"), (2, 2, "1"), (3, 3, "1")]
    assert seen["1002"] == [(1, 1, "1"), (2, 2, "1")]
    # order 1002 did not wait for order 1001
    arrival = {(r.json()["subject"], n_of(r), r.header("webhook-attempt")): r for r in requests}
    assert arrival["1002", 2, "1"].received_at < arrival["1001", 1, "3"].received_at
    await assert_queues_consistent(service)


async def test_concurrent_publishes_of_one_subject_get_consecutive_numbers_delivered_in_order(
    open_service: OpenService,
) -> None:
    # Given an ordered subscription and an unordered one, both answering after 20-100 ms
    # (slower than publishing: deliveries sent side by side would overtake one another)
    service = await open_service()
    jitter = random.Random(14)
    with Receiver(default=respond(200)) as receiver:
        for path in ("/ordered", "/unordered"):
            receiver.script(path, lambda _: respond(200, delay=jitter.uniform(0.02, 0.1)))
        await subscribe(service, receiver.url_for("/ordered"))
        await subscribe(service, receiver.url_for("/unordered"), ordering="NONE")

        # When (its key known: a fresh key's calls spend the address's small bucket until
        # one has verified it) 30 events of one order and 10 of another are published at once
        await service.publish_event(order(2000, 0), subject=None)
        events = [(2001, n) for n in range(30)] + [(2002, n) for n in range(10)]
        published = await asyncio.gather(
            *(service.publish_event(order(order_id, n), subject=None) for order_id, n in events)
        )

        # Then every delivery succeeds
        ids = [delivery["id"] for event in published for delivery in event["deliveries"]]
        for delivery_id in ids:
            await service.wait_for_status(delivery_id, "SUCCEEDED", timeout=20)
        ordered = receiver.requests_to("/ordered")
        unordered = receiver.requests_to("/unordered")

    # each order's ordered deliveries are numbered 1..n without a gap or a repeat, and
    # arrived in that order, once each
    for subject, count in (("2001", 30), ("2002", 10)):
        numbers = [sequence_of(r) for r in ordered if r.json()["subject"] == subject]
        assert numbers == list(range(1, count + 1))
    rows = await service.sql(
        "SELECT d.subject, d.sequence, d.event_id::text AS event FROM deliveries d"
        " JOIN subscriptions s ON s.id = d.subscription_id WHERE s.ordering = 'PER_SUBJECT'"
    )
    by_event = {row["event"]: (row["subject"], row["sequence"]) for row in rows}
    assert [(r.json()["subject"], sequence_of(r)) for r in ordered] == [
        by_event[r.json()["id"]] for r in ordered
    ]
    # while the unordered subscription's carry no number
    assert len(unordered) == 41
    assert {sequence_of(r) for r in unordered} == {None}
    await assert_queues_consistent(service)


async def test_a_delivery_that_fails_for_good_lets_the_next_one_go(
    open_service: OpenService,
) -> None:
    # Given two attempts at most, and a receiver that always fails an order's first event
    service = await open_service(retry_interval_seconds=0.2, max_attempts=2)
    with Receiver() as receiver:
        receiver.script(
            "/hook", lambda r: respond(500) if n_of(r) == 1 else respond(200, delay=0.05)
        )
        await subscribe(service, receiver.url_for("/hook"))

        # When three events of the order are published
        ids = [await publish(service, 3001, n) for n in (1, 2, 3)]

        # Then the first fails after its two attempts, and only then the others go, in order
        await service.wait_for_status(ids[2], "SUCCEEDED", timeout=10)
        requests = receiver.requests_to("/hook")

    assert await statuses(service, ids) == ["FAILED", "SUCCEEDED", "SUCCEEDED"]
    assert [(n_of(r), sequence_of(r)) for r in requests] == [(1, 1), (1, 1), (2, 2), (3, 3)]
    await assert_queues_consistent(service)


async def test_a_delivery_given_up_by_the_recovery_lets_the_next_one_go(
    open_service: OpenService,
) -> None:
    # Given an order's first event failing (retried a minute later) and two held behind it
    service = await open_service()
    with Receiver() as receiver:
        receiver.script("/hook", lambda r: respond(500) if n_of(r) == 1 else respond(200))
        await subscribe(service, receiver.url_for("/hook"))
        ids = [await publish(service, 3101, n) for n in (1, 2, 3)]
        await service.wait_for_status(ids[0], "RETRYING")

        # When the maintenance loop gives up on it (its job lost too often)
        with scoped(WORKER_SCOPE):
            assert await give_up(service.services, uuid.UUID(ids[0]), "lost") == "failed"

        # Then the next ones go at once, in order
        await service.wait_for_status(ids[2], "SUCCEEDED")
        requests = receiver.requests_to("/hook")

    assert await statuses(service, ids) == ["FAILED", "SUCCEEDED", "SUCCEEDED"]
    assert [n_of(r) for r in requests] == [1, 2, 3]
    await assert_queues_consistent(service)


async def test_redelivering_an_ordered_delivery_sends_it_at_once_with_its_old_number(
    open_service: OpenService,
) -> None:
    # Given an order's first event delivered, its second failing (a retry a minute away)
    # and its third held behind the second
    service = await open_service()
    with Receiver() as receiver:
        receiver.script("/hook", lambda r: respond(500) if n_of(r) == 2 else respond(200))
        await subscribe(service, receiver.url_for("/hook"))
        first = await publish(service, 3201, 1)
        await service.wait_for_status(first, "SUCCEEDED")
        second, third = [await publish(service, 3201, n) for n in (2, 3)]
        await service.wait_for_status(second, "RETRYING")

        # When the first is redelivered, and the third (HELD) too
        redelivered = await service.api.data(REDELIVER, {"id": first}, key=service.tenants.key_a)
        refused = await service.api.data(REDELIVER, {"id": third}, key=service.tenants.key_a)

        # Then the first goes at once, outside the queue, with its own number, and its
        # success releases nothing: the third still waits for the second
        await receiver.wait_for_async(3, path="/hook")
        await service.wait_for_status(first, "SUCCEEDED")
        await service.wait_for_idle(first)
        requests = receiver.requests_to("/hook")
        still = await queued(service, third)

    assert redelivered["redeliver"]["delivery"]["sequence"] == 1
    assert [(n_of(r), sequence_of(r)) for r in requests] == [(1, 1), (2, 2), (1, 1)]
    assert still["status"] == "HELD"
    assert still["waitingFor"]["id"] == second
    # a held delivery cannot be redelivered: it has not been sent yet
    assert refused["redeliver"]["delivery"] is None
    [error] = refused["redeliver"]["userErrors"]
    assert error["code"] == "INVALID" and "waitingFor" in error["message"]
    await assert_queues_consistent(service)


async def test_closing_the_subscription_cancels_the_held_deliveries_with_their_head(
    open_service: OpenService,
) -> None:
    # Given three ordered subscriptions, each with an order's first event being retried
    # (every 0.2 s) and two held behind it; the third's receiver answers 410 next time
    service = await open_service(retry_interval_seconds=0.2, max_attempts=100)
    with Receiver(default=respond(500)) as receiver:
        receiver.script("/410", [respond(500), respond(410)])
        ways = ("delete", "deactivate", "410")
        subscriptions = {way: await subscribe(service, receiver.url_for(f"/{way}")) for way in ways}
        for n in (1, 2, 3):
            await service.publish_event(order(3301, n), subject=None)
        mine = {
            way: [
                row["id"]
                for row in await service.sql(
                    "SELECT id::text AS id FROM deliveries WHERE subscription_id = %(s)s"
                    " ORDER BY sequence",
                    s=subscriptions[way].id,
                )
            ]
            for way in ways
        }

        # When one is deleted, one deactivated, and one's receiver answers 410 Gone
        await service.wait_for_status(mine["delete"][0], "RETRYING")
        await service.api.data(
            DELETE, {"id": subscriptions["delete"].id}, key=service.tenants.key_a
        )
        await update(service, subscriptions["deactivate"].id, isActive=False)

        # Then every delivery of theirs ends CANCELLED (the one answered 410: FAILED),
        # none is left held, and nothing more is queued or sent
        for way in ways:
            for delivery_id in mine[way][1:]:
                await service.wait_for_status(delivery_id, "CANCELLED")
            for delivery_id in mine[way]:
                await service.wait_for_idle(delivery_id)
        sent = {way: {n_of(r) for r in receiver.requests_to(f"/{way}")} for way in ways}

    assert {way: await statuses(service, mine[way]) for way in ways} == {
        "delete": ["CANCELLED"] * 3,
        "deactivate": ["CANCELLED"] * 3,
        "410": ["FAILED", "CANCELLED", "CANCELLED"],
    }
    assert sent == {"delete": {1}, "deactivate": {1}, "410": {1}}
    # each way's three ended together, in one transaction: none was released and sent
    # (or cancelled by a job of its own) first
    for way in ways:
        ended = await service.sql(
            "SELECT DISTINCT completed_at FROM deliveries WHERE subscription_id = %(s)s",
            s=subscriptions[way].id,
        )
        assert len(ended) == 1, (way, ended)
    await assert_queues_consistent(service)


async def test_a_delivery_cancelled_by_its_attempt_cancels_those_held_behind_it(
    open_service: OpenService,
) -> None:
    # Given an order's first event being retried (every 0.2 s) with two held behind it
    service = await open_service(retry_interval_seconds=0.2, max_attempts=100)
    with Receiver(default=respond(500)) as receiver:
        subscription = await subscribe(service, receiver.url_for("/hook"))
        ids = [await publish(service, 3401, n) for n in (1, 2, 3)]
        await service.wait_for_status(ids[0], "RETRYING")

        # When the subscription is switched off behind the service's back (nothing
        # cancelled), so that the worker's next attempt finds nobody to send to
        await service.sql(
            "UPDATE subscriptions SET is_active = false WHERE id = %(id)s", id=subscription.id
        )

        # Then that attempt cancels it, and the held ones with it (not one by one)
        for delivery_id in ids:
            await service.wait_for_status(delivery_id, "CANCELLED")
            await service.wait_for_idle(delivery_id)
        sent = {n_of(r) for r in receiver.requests_to("/hook")}

    assert sent == {1}
    ended = await service.sql(
        "SELECT DISTINCT completed_at FROM deliveries WHERE subscription_id = %(s)s",
        s=subscription.id,
    )
    assert len(ended) == 1, ended
    await assert_queues_consistent(service)


async def test_switching_ordering_off_sends_the_held_at_once_and_back_on_waits_for_them(
    open_service: OpenService,
) -> None:
    # Given an order's first three events failing (retried a minute later): the first
    # being retried, two held behind it
    service = await open_service()
    with Receiver() as receiver:
        receiver.script("/hook", lambda r: respond(500) if n_of(r) <= 3 else respond(200))
        subscription = await subscribe(service, receiver.url_for("/hook"))
        ids = [await publish(service, 3501, n) for n in (1, 2, 3)]
        await service.wait_for_status(ids[0], "RETRYING")

        # When ordering is switched off
        switched = await update(service, subscription.id, ordering="NONE")

        # Then the held ones are sent at once (keeping their numbers), and a new event of
        # the order is sent unnumbered
        for delivery_id in ids[1:]:
            await service.wait_for_status(delivery_id, "RETRYING")
        unordered = await publish(service, 3501, 4)
        await service.wait_for_status(unordered, "SUCCEEDED")
        sent_unordered = receiver.requests_to("/hook")

        # and when ordering comes back while those three are still open, a new event
        # waits until every one of them has ended
        await update(service, subscription.id, ordering="PER_SUBJECT")
        again = await publish(service, 3501, 5)
        waiting = await queued(service, again)
        with scoped(WORKER_SCOPE):
            for delivery_id in ids:
                assert (await queued(service, again))["status"] == "HELD"
                assert await give_up(service.services, uuid.UUID(delivery_id), "x") == "failed"
        await service.wait_for_status(again, "SUCCEEDED")
        last = receiver.requests_to("/hook")[-1]

    assert switched["subscription"]["ordering"] == "NONE"
    assert sorted((n_of(r), sequence_of(r)) for r in sent_unordered) == [
        (1, 1),
        (2, 2),
        (3, 3),
        (4, None),
    ]
    assert (waiting["status"], waiting["sequence"]) == ("HELD", 4)
    assert waiting["waitingFor"]["id"] == ids[0]
    assert (n_of(last), sequence_of(last)) == (5, 4)
    await assert_queues_consistent(service)


JOB_COLUMNS = (
    "queue_name, task_name, priority, lock, queueing_lock, args, status, scheduled_at,"
    " attempts, abort_requested, worker_id"
)


async def test_the_job_a_queue_hands_on_with_is_the_one_procrastinates_defer_makes(
    open_service: OpenService,
) -> None:
    # Given (no worker) an order's first event and its second, held
    service = await open_service(worker=False)
    await subscribe(service, "http://127.0.0.1:9/hook")
    first, second = [await publish(service, 3601, n) for n in (1, 2)]
    assert await open_jobs(service, second) == 0

    # When the first ends, by any statement at all
    await service.sql(
        "UPDATE deliveries SET status = 'SUCCEEDED', completed_at = now() WHERE id = %(id)s",
        id=first,
    )

    # Then the second is PENDING with the job of its first attempt, column by column the
    # one Procrastinate's batch defer makes of the same AttemptJob (queue, task, priority)
    handed_on = await service.sql(
        f"SELECT id, {JOB_COLUMNS} FROM procrastinate_jobs WHERE lock = %(id)s", id=second
    )
    async with service.services.db.transaction() as tx:
        await defer_attempts(service.services.queue, tx, [AttemptJob(uuid.UUID(second), 1, 1)])
    deferred = await service.sql(
        f"SELECT id, {JOB_COLUMNS} FROM procrastinate_jobs WHERE lock = %(id)s AND id > %(after)s",
        id=second,
        after=handed_on[0]["id"],
    )
    assert (await service.delivery(second))["status"] == "PENDING"
    assert [{**job, "id": None} for job in handed_on] == [{**job, "id": None} for job in deferred]
    await assert_queues_consistent(service)


async def test_the_recovery_requeues_a_queue_head_whose_job_was_lost_but_never_a_held_one(
    open_service: OpenService,
) -> None:
    # Given (no worker) an order's first event, whose job was lost long ago, and its
    # second, held; both as overdue as can be (a HELD delivery has no due time: its
    # status alone must keep it out of the recovery)
    service = await open_service(worker=False)
    await subscribe(service, "http://127.0.0.1:9/hook")
    first, second = [await publish(service, 3701, n) for n in (1, 2)]
    await service.sql("DELETE FROM procrastinate_jobs")
    await service.sql(
        "UPDATE deliveries SET next_attempt_at = now() - interval '1 hour',"
        " created_at = now() - interval '1 hour'"
    )

    # When the maintenance loop runs
    with scoped(WORKER_SCOPE):
        report = await recover(service.services)

    # Then only the first one's attempt is queued again
    assert report["orphans"] == 1
    assert (await open_jobs(service, first), await open_jobs(service, second)) == (1, 0)
    assert (await service.delivery(second))["status"] == "HELD"
    await assert_queues_consistent(service)


async def test_retention_keeps_the_queues_and_what_held_deliveries_will_send(
    open_service: OpenService,
) -> None:
    # Given (no worker) three events of an order: the first delivered, the second being
    # sent, the third held
    service = await open_service(worker=False)
    await subscribe(service, "http://127.0.0.1:9/hook")
    ids = [await publish(service, 3801, n) for n in (1, 2, 3)]
    await service.sql(
        "UPDATE deliveries SET status = 'SUCCEEDED', completed_at = now() WHERE id = %(id)s",
        id=ids[0],
    )

    # When everything is long past its retention
    await purge_old_data(service.services.db, 30, now=datetime.now(UTC) + timedelta(days=365))

    # Then the queue keeps its numbering and count, and the open deliveries their bodies
    [queue] = await service.sql("SELECT last_sequence, open_count FROM subject_queues")
    assert queue == {"last_sequence": 3, "open_count": 2}
    bodies = await service.sql(
        "SELECT d.status, e.body IS NOT NULL AS kept FROM deliveries d"
        " JOIN events e ON e.id = d.event_id ORDER BY d.sequence"
    )
    assert [(row["status"], row["kept"]) for row in bodies] == [
        ("SUCCEEDED", False),
        ("PENDING", True),
        ("HELD", True),
    ]
    await assert_queues_consistent(service)


ROUNDS = 60


async def test_closing_a_subscription_while_its_subject_is_published_never_deadlocks(
    open_service: OpenService,
) -> None:
    # Given (no worker: every delivery stays open) ordered subscriptions, each with an
    # order's first event open
    service = await open_service(worker=False)
    raised = Raised()

    for round_ in range(ROUNDS):
        subscription = await subscribe(service, f"http://127.0.0.1:9/close/{round_}")
        await publish(service, 3901 + round_, 1)

        # When the order's next event is published while the subscription is deactivated
        # (even rounds) or deleted (odd ones), at once
        way = "deactivate" if round_ % 2 == 0 else "delete"
        close = (
            update(service, subscription.id, isActive=False)
            if way == "deactivate"
            else service.api.data(DELETE, {"id": subscription.id}, key=service.tenants.key_a)
        )
        await asyncio.gather(
            raised.by(service.publish_event(order(3901 + round_, 2), subject=None), "publish"),
            raised.by(close, way),
        )

    # Then both always succeed (a deadlock made one of them an internal error)
    assert raised.errors == []
    # and, once the worker has run, every delivery of the closed subscriptions is
    # cancelled unsent (one published just after the close was cancelled by its attempt),
    # the queues in order
    await assert_queues_consistent(service)
    service.start_worker()

    async def all_cancelled() -> bool:
        rows = await service.sql("SELECT DISTINCT status FROM deliveries")
        return rows == [{"status": "CANCELLED"}]

    await service.wait_until(all_cancelled, timeout=10)
    assert await service.sql("SELECT * FROM delivery_attempts") == []
    await assert_queues_consistent(service)
