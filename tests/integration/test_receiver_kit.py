"""The README's Python receiver (examples/receiver.py) works against real deliveries."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.delivery_ordering import DeliveryOrdering
from app.domain.events import NewEvent
from app.domain.redelivery import redeliver
from app.domain.subscriptions import NewSubscription
from app.store.services import Services
from tests.payloads import order_status_payload
from tests.service import Tenants, company_viewer, create_subscription_for, publish_event_with
from tests.smtp import free_port

RECEIVER = Path(__file__).resolve().parents[2] / "examples" / "receiver.py"


class RunningReceiver:
    """examples/receiver.py as a subprocess, its stdout (one JSON line per POST) in a file."""

    def __init__(
        self, secret: str, port: int, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.log = log
        self._out = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(RECEIVER), str(port)],
            env={**os.environ, "SIGNING_SECRET": secret, **(env or {})},
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def lines(self) -> list[dict[str, Any]]:
        text = self.log.read_text()
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    async def wait_until(self, done: Callable[[], bool]) -> None:
        deadline = asyncio.get_running_loop().time() + 10
        while not done():
            assert asyncio.get_running_loop().time() < deadline, self.log.read_text()
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(5)
        self._out.close()


@pytest.fixture
def start_receiver(tmp_path: Path) -> Iterator[Callable[..., RunningReceiver]]:
    started: list[RunningReceiver] = []

    def start(secret: str, port: int, env: dict[str, str] | None = None) -> RunningReceiver:
        started.append(RunningReceiver(secret, port, tmp_path / f"receiver-{port}.log", env))
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()


async def test_the_example_receiver_verifies_and_deduplicates_real_deliveries(
    services: Services,
    tenants: Tenants,
    worker: asyncio.Task[None],
    start_receiver: Callable[[str, int], RunningReceiver],
) -> None:
    port = free_port()
    _, secret = await create_subscription_for(
        services,
        tenants.a,
        NewSubscription("ORDER_STATUS", f"http://127.0.0.1:{port}/hook", "ops@example.com"),
    )
    receiver = start_receiver(secret, port)
    await receiver.wait_until(lambda: "listening" in receiver.log.read_text())

    event = await publish_event_with(
        services, NewEvent(tenants.a, "ORDER_STATUS", order_status_payload(), subject="ord_1")
    )
    await receiver.wait_until(lambda: len(receiver.lines()) >= 1)
    first = receiver.lines()[0]
    assert first["duplicate"] is False
    assert first["event"] == {
        "id": str(event.id),
        "webhook": "ORDER_STATUS",
        "companyId": tenants.a,
        "subject": "ord_1",
        "createdAt": first["event"]["createdAt"],
        "data": order_status_payload(),
    }

    [delivery] = await services.db.fetch_all(
        "deliveries_of_events", event_ids=[event.id], company_id=None
    )
    await wait_for_status(services, delivery["id"], "SUCCEEDED")
    await redeliver(services.db, services.queue, company_viewer(tenants.a), str(delivery["id"]))
    await receiver.wait_until(lambda: len(receiver.lines()) >= 2)
    second = receiver.lines()[1]
    assert second["webhookId"] == first["webhookId"]
    assert second["duplicate"] is True


async def test_the_example_receiver_refuses_a_forged_signature(
    start_receiver: Callable[[str, int], RunningReceiver],
) -> None:
    port = free_port()
    receiver = start_receiver("whsec_" + "A" * 43 + "=", port)
    await receiver.wait_until(lambda: "listening" in receiver.log.read_text())
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"http://127.0.0.1:{port}/hook",
            content=b"{}",
            headers={
                "webhook-id": "msg_forged",
                "webhook-timestamp": str(int(time.time())),
                "webhook-signature": "v1,Zm9yZ2Vk",
            },
        )
    assert response.status_code == 400
    assert receiver.lines() == []


async def test_the_example_receiver_checks_the_authorization_header_a_subscription_sends(
    services: Services,
    tenants: Tenants,
    worker: asyncio.Task[None],
    start_receiver: Callable[..., RunningReceiver],
) -> None:
    # Given two receivers expecting one bearer token: one subscription sends it as a
    # custom header, the other sends none
    token = "Bearer kit-token-0123456789"
    receivers, subscriptions = [], []
    for headers in ([("Authorization", token)], []):
        port = free_port()
        url = f"http://127.0.0.1:{port}/hook"
        created, secret = await create_subscription_for(
            services,
            tenants.a,
            NewSubscription("ORDER_STATUS", url, "ops@example.com", headers=headers),
        )
        subscriptions.append(created.id)
        receivers.append(start_receiver(secret, port, {"AUTHORIZATION": token}))
    for receiver in receivers:
        log = receiver.log
        await receiver.wait_until(lambda: "listening" in log.read_text())  # noqa: B023 -- awaited at once

    # When an event goes to both
    event = await publish_event_with(
        services, NewEvent(tenants.a, "ORDER_STATUS", order_status_payload(), subject="41")
    )
    rows = await services.db.fetch_all(
        "deliveries_of_events", event_ids=[event.id], company_id=None
    )
    by_subscription = {row["subscription_id"]: row["id"] for row in rows}
    deliveries = [by_subscription[subscription] for subscription in subscriptions]

    # Then the one with the header is taken, the other answered 401 and retried later
    await wait_for_status(services, deliveries[0], "SUCCEEDED")
    await wait_for_status(services, deliveries[1], "RETRYING")
    assert [line["event"]["id"] for line in receivers[0].lines()] == [str(event.id)]
    assert receivers[1].lines() == []
    failed = await services.db.fetch_one("get_delivery", id=deliveries[1], company_id=None)
    assert failed is not None and failed["last_response_status"] == 401


async def test_the_example_receiver_tells_a_gap_and_a_late_event_of_an_ordered_subject(
    services: Services,
    tenants: Tenants,
    worker: asyncio.Task[None],
    start_receiver: Callable[[str, int], RunningReceiver],
) -> None:
    # Given an ordered subscription, and three events of order 41 published while its
    # receiver is down
    port = free_port()
    _, secret = await create_subscription_for(
        services,
        tenants.a,
        NewSubscription(
            "ORDER_STATUS",
            f"http://127.0.0.1:{port}/hook",
            "ops@example.com",
            ordering=DeliveryOrdering.PER_SUBJECT,
        ),
    )
    events = [
        await publish_event_with(
            services, NewEvent(tenants.a, "ORDER_STATUS", order_status_payload(n=n))
        )
        for n in (1, 2, 3)
    ]
    [first] = await services.db.fetch_all(
        "deliveries_of_events", event_ids=[events[0].id], company_id=None
    )
    await wait_for_status(services, first["id"], "RETRYING")

    # When the first is cancelled, the receiver starts, and the first is redelivered
    # once the other two are through
    await services.db.execute("cancel_delivery", id=first["id"])
    receiver = start_receiver(secret, port)
    await receiver.wait_until(lambda: len(receiver.lines()) >= 2)
    await redeliver(services.db, services.queue, company_viewer(tenants.a), str(first["id"]))
    await receiver.wait_until(lambda: len(receiver.lines()) >= 3)

    # Then it printed the second after a gap (the first missing), the third next, and
    # the first, late, as old
    assert [(line["event"]["data"]["n"], line["sequence"]) for line in receiver.lines()] == [
        (2, {"number": 2, "gap": [1]}),
        (3, {"number": 3}),
        (1, {"number": 1, "old": True}),
    ]


async def wait_for_status(services: Services, delivery_id: object, status: str) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        row = await services.db.fetch_one("get_delivery", id=delivery_id, company_id=None)
        if row is not None and row["status"] == status:
            return
        assert asyncio.get_running_loop().time() < deadline, row
        await asyncio.sleep(0.05)
