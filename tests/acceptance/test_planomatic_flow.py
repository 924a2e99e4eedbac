"""The PlanOmatic flow of issue 13 through the real processes: a subscriber that only
wants completed orders and one that wants every status, both authenticated by a custom
header, and the order system publishing one order's ``scheduled`` then ``completed``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from app.core.secret_box import generate_key
from tests.acceptance.processes import (
    Api,
    Processes,
    publish,
    seed_tenants,
    service_environment,
    wait_for_listeners,
    wait_for_status,
)
from tests.payloads import order_status_payload
from tests.receivers import Receiver

SUBSCRIBE = """
mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) {
    subscription { id filter headers { name valueHint } }
    signingSecret
    userErrors { field code message }
  }
}"""

TOKEN = "Bearer partner-token-4f1c9a7e"


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path / "logs") as started:
        yield started


def subscribe(api: Api, key: str, url: str, content_filter: Any = None) -> tuple[str, str]:
    result = api.data(
        SUBSCRIBE,
        {
            "input": {
                "webhook": "ORDER_STATUS",
                "callbackUrl": url,
                "notificationEmail": "ops@company-a.example",
                "headers": [{"name": "Authorization", "value": TOKEN}],
                "filter": content_filter,
            }
        },
        key=key,
    )["createWebhookSubscription"]
    assert result["userErrors"] == [], result
    assert result["subscription"]["headers"] == [{"name": "Authorization", "valueHint": "••••9a7e"}]
    assert result["subscription"]["filter"] == content_filter
    return result["subscription"]["id"], result["signingSecret"]


def test_a_filtered_and_an_unfiltered_subscriber_of_one_order(
    database_url: str, tmp_path: Path, processes: Processes
) -> None:
    tenants = seed_tenants(database_url)
    env = service_environment(database_url, tmp_path / "data", generate_key())
    server = processes.serve(env)
    processes.worker(env)
    wait_for_listeners(database_url, 1, processes=processes)

    with Receiver() as receiver, Api(server.url("")) as api:
        # Given company A's two subscriptions: one only for completed orders
        _, completed_secret = subscribe(
            api, tenants.key_a, receiver.url_for("/completed"), {"order_status": "completed"}
        )
        _, every_secret = subscribe(api, tenants.key_a, receiver.url_for("/every"))

        # When the order system publishes order 332818 scheduled, then completed
        scheduled = order_status_payload(order_id=332818, order_status="scheduled")
        completed = order_status_payload(order_id=332818, order_status="completed")
        first = publish(api, tenants.publisher, tenants.a, scheduled)
        second = publish(api, tenants.publisher, tenants.a, completed)

        # Then the scheduled event fanned out to one subscription, the completed to both
        assert len(first["deliveries"]) == 1
        assert len(second["deliveries"]) == 2
        for delivery in first["deliveries"] + second["deliveries"]:
            wait_for_status(api, tenants.key_a, delivery["id"], "SUCCEEDED")

    # The filtered receiver got one request, the other two, all carrying the header and
    # a signature that verifies; the subject is the order id
    only_completed = receiver.requests_to("/completed")
    every = receiver.requests_to("/every")
    assert len(only_completed) == 1
    assert len(every) == 2
    for requests, secret in ((only_completed, completed_secret), (every, every_secret)):
        for request in requests:
            assert request.header("authorization") == TOKEN
            body = Webhook(secret).verify(request.body, dict(request.headers))
            assert body["subject"] == "332818"
    assert only_completed[0].json()["data"] == completed
    assert sorted(r.json()["data"]["order_status"] for r in every) == ["completed", "scheduled"]
