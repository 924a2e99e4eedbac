"""End to end over HTTP: ``webhooks serve`` and ``webhooks worker`` as real processes,
a real receiver on 127.0.0.1, and the CLI to set things up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from app.core.secret_box import generate_key
from tests.acceptance.processes import (
    Api,
    Processes,
    empty_database,
    publish,
    run_cli,
    seed_tenants,
    service_environment,
    subscribe,
    wait_for_listeners,
    wait_for_status,
)
from tests.database import PostgresServer
from tests.payloads import order_status_payload
from tests.receivers import Receiver, RecordedRequest

EVENTS = """
{ events { nodes { id company { id } subject
    deliveries { id status attemptCount subscription { id } } } } }
"""
DELIVERIES = "{ deliveries { nodes { id status event { id } } } }"
SUBSCRIPTIONS = "{ webhookSubscriptions { nodes { id } } }"
LOOKUPS = """
query Lookups($subscription: ID!, $event: ID!, $delivery: ID!) {
  webhookSubscription(id: $subscription) { id }
  event(id: $event) { id }
  delivery(id: $delivery) { id }
}
"""
ORDER_42 = order_status_payload(order_id=42)
ORDER_7 = order_status_payload(order_id=7)


@pytest.fixture
def empty_database_url(postgres_server: PostgresServer) -> Iterator[str]:
    with empty_database(postgres_server) as url:
        yield url


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path / "logs") as started:
        yield started


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


def verified_body(request: RecordedRequest, secret: str) -> dict[str, object]:
    """The body, after standardwebhooks checked the signature (raises if it is wrong)."""
    body: dict[str, object] = Webhook(secret).verify(request.body, dict(request.headers))
    return body


def test_the_issues_done_means_flow(
    empty_database_url: str, tmp_path: Path, receiver: Receiver, processes: Processes
) -> None:
    # migrate; two companies; a key for each and one for the publisher
    env = service_environment(empty_database_url, tmp_path / "data", generate_key())
    assert run_cli("migrate", "--json", env=env).json()["applied"]
    server = processes.serve(env, ready=False)  # starts while the CLI does the rest
    for company_id, name in (("company-a", "Company A"), ("company-b", "Company B")):
        created = run_cli("company", "create", name, "--id", company_id, "--json", env=env)
        assert created.json() == {"id": company_id, "name": name}
    key_a = run_cli("key", "create", "--company", "company-a", "--json", env=env).json()["key"]
    key_b = run_cli("key", "create", "--company", "company-b", "--json", env=env).json()["key"]
    publisher = run_cli("key", "create", "--publisher", "--json", env=env).json()["key"]
    server.wait_for_http("/readyz")

    with Api(server.url("")) as api:
        # A subscribes; the publisher publishes for A and for B (no worker runs yet)
        subscription_id, _ = subscribe(api, key_a, receiver.url_for("/a"))
        shot = order_status_payload(order_status="assembly")
        event_a = publish(api, publisher, "company-a", shot | {"order_id": 101}, "A-1")
        event_b = publish(api, publisher, "company-b", shot | {"order_id": 201}, "B-1")
        [delivery_a] = event_a["deliveries"]
        assert event_b["deliveries"] == []

        # A sees its event with one PENDING delivery
        a_events = api.data(EVENTS, key=key_a)["events"]["nodes"]
        assert a_events == [
            {
                "id": event_a["id"],
                "company": {"id": "company-a"},
                "subject": "A-1",
                "deliveries": [
                    {
                        "id": delivery_a["id"],
                        "status": "PENDING",
                        "attemptCount": 0,
                        "subscription": {"id": subscription_id},
                    }
                ],
            }
        ]
        assert api.data(DELIVERIES, key=key_a)["deliveries"]["nodes"] == [
            {"id": delivery_a["id"], "status": "PENDING", "event": {"id": event_a["id"]}}
        ]

        # B sees none of A's data
        b_events = api.data(EVENTS, key=key_b)["events"]["nodes"]
        assert [event["id"] for event in b_events] == [event_b["id"]]
        assert api.data(DELIVERIES, key=key_b)["deliveries"]["nodes"] == []
        assert api.data(SUBSCRIPTIONS, key=key_b)["webhookSubscriptions"]["nodes"] == []
        lookups = {
            "subscription": subscription_id,
            "event": event_a["id"],
            "delivery": delivery_a["id"],
        }
        assert api.data(LOOKUPS, lookups, key=key_b) == {
            "webhookSubscription": None,
            "event": None,
            "delivery": None,
        }
        # ...and A sees nothing of B's
        assert api.data(LOOKUPS, {**lookups, "event": event_b["id"]}, key=key_a)["event"] is None

    assert receiver.requests == []


def test_serve_and_worker_deliver_a_signed_webhook(
    database_url: str, tmp_path: Path, receiver: Receiver, processes: Processes
) -> None:
    tenants = seed_tenants(database_url)
    # Polling every 5 s: only LISTEN/NOTIFY can start attempt 1 within a second.
    env = service_environment(
        database_url, tmp_path / "data", generate_key(), WEBHOOKS_POLL_INTERVAL_SECONDS="5"
    )
    server = processes.serve(env)
    processes.worker(env)
    wait_for_listeners(database_url, 1, processes=processes)

    with Api(server.url("")) as api:
        subscription_id, secret = subscribe(api, tenants.key_a, receiver.url_for("/hooks/order"))
        published_at = time.monotonic()
        event = publish(api, tenants.publisher, tenants.a, ORDER_42, subject="o-42")
        [request] = receiver.wait_for(1, timeout=10)
        latency = request.received_at - published_at
        [delivery] = event["deliveries"]
        done = wait_for_status(api, tenants.key_a, delivery["id"], "SUCCEEDED")

    assert latency < 1.0, f"attempt 1 arrived {latency:.3f} s after publishing"
    print(f"attempt 1 arrived {latency * 1000:.0f} ms after publishEvent was sent")
    assert request.method == "POST"
    assert request.path == "/hooks/order"
    assert verified_body(request, secret) == {
        "id": event["id"],
        "webhook": "ORDER_STATUS",
        "companyId": tenants.a,
        "subject": "o-42",
        "createdAt": verified_body(request, secret)["createdAt"],
        "data": ORDER_42,
    }
    assert request.header("webhook-id") == delivery["webhookId"] == done["webhookId"]
    assert request.header("webhook-attempt") == "1"
    assert request.header("content-type") == "application/json"
    assert (request.header("user-agent") or "").startswith("PlanOmatic-Webhooks/")
    assert done["attemptCount"] == 1
    assert done["lastResponseStatus"] == 200
    assert done["completedAt"] is not None
    assert done["attempts"] == [
        {"number": 1, "cycle": 1, "responseStatus": 200, "succeeded": True, "error": None}
    ]
    assert subscription_id


def test_serve_with_worker_delivers_on_its_own(
    database_url: str, tmp_path: Path, receiver: Receiver, processes: Processes
) -> None:
    tenants = seed_tenants(database_url)
    env = service_environment(database_url, tmp_path / "data", generate_key())
    server = processes.serve(env, "--with-worker")

    ready = server.wait_for_http("/readyz")
    with Api(server.url("")) as api:
        _, secret = subscribe(api, tenants.key_a, receiver.url_for("/hook"))
        event = publish(api, tenants.publisher, tenants.a, ORDER_7)
        [request] = receiver.wait_for(1, timeout=10)
        [delivery] = event["deliveries"]
        done = wait_for_status(api, tenants.key_a, delivery["id"], "SUCCEEDED")

    assert ready.json() == {
        "ready": True,
        "checks": {"database": True, "migrations": True, "resources": True, "worker": True},
    }
    assert verified_body(request, secret)["data"] == ORDER_7
    assert request.header("webhook-id") == done["webhookId"]
    assert [attempt["number"] for attempt in done["attempts"]] == [1]
    assert server.returncode is None, server.describe()
