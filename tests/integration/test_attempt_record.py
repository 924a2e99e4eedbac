"""An attempt records where it went, with API key parameter values masked."""

from __future__ import annotations

import asyncio

from app.domain.events import NewEvent
from app.domain.subscriptions import NewSubscription
from app.store.services import Services
from tests.payloads import order_status_payload
from tests.receivers import Receiver, respond
from tests.service import GraphQLClient, Tenants, create_subscription_for, publish_event_with

ATTEMPTS = "query($id: ID!) { delivery(id: $id) { attempts { url responseStatus } } }"


async def test_the_attempt_url_masks_api_key_values(
    api: GraphQLClient, services: Services, tenants: Tenants, worker: asyncio.Task[None]
) -> None:
    with Receiver(default=respond(500)) as receiver:
        callback_url = receiver.url_for("/hook?region=eu")
        await create_subscription_for(
            services,
            tenants.a,
            NewSubscription(
                "ORDER_STATUS",
                callback_url,
                "ops@example.com",
                api_key_params=[("token", "very-secret-token-value")],
            ),
        )
        event = await publish_event_with(
            services, NewEvent(tenants.a, "ORDER_STATUS", order_status_payload(n=1))
        )
        await receiver.wait_for_async(1)
    [delivery] = await services.db.fetch_all(
        "deliveries_of_events", event_ids=[event.id], company_id=None
    )
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        data = await api.data(ATTEMPTS, {"id": str(delivery["id"])}, key=tenants.key_a)
        if data["delivery"]["attempts"]:
            break
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)

    [attempt] = data["delivery"]["attempts"][:1]
    assert receiver.requests[0].params["token"] == ["very-secret-token-value"]
    assert attempt["url"] == callback_url + "&token=••••"
    assert "very-secret" not in attempt["url"]
