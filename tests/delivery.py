"""Delivery fixtures: the whole service (API, database, real worker) with chosen settings.

The ``open_service`` fixture opens services, the GraphQL API, two tenants and, unless
asked not to, the real Procrastinate worker, all with the settings a test names:

    service = await open_service(retry_interval_seconds=1, max_attempts=3)
    subscription = await service.subscribe(receiver.url_for("/hook"))
    delivery_id = await service.publish(order_status_payload(n=1))
    delivery = await service.wait_for_status(delivery_id, "FAILED")

Waiting is always polling with a deadline, never a fixed sleep, and a wait fails early
with the worker's own error when the worker stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from psycopg.rows import dict_row
from standardwebhooks.webhooks import Webhook

from app.core.settings import Settings
from app.delivery.worker import run_worker
from app.domain import api_keys, companies
from app.store.services import Services, open_services
from app.web.server import build_app
from tests.payloads import order_status_payload
from tests.receivers import RecordedRequest
from tests.service import GraphQLClient, Tenants, make_settings

# What these tests run with unless they say otherwise: a failed attempt waits a minute
# (so a test sees RETRYING, not the next attempt), a silent receiver half a second.
DEFAULTS: dict[str, Any] = {
    "retry_interval_seconds": 60.0,
    "request_timeout_seconds": 0.5,
    "email_window_seconds": 0.0,
    "poll_interval_seconds": 0.1,
    "stalled_after_seconds": 5.0,
}

CREATE_SUBSCRIPTION = """
mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) {
    subscription { id }
    signingSecret
    userErrors { field code message }
  }
}"""

PUBLISH = """
mutation($input: PublishEventInput!) {
  publishEvent(input: $input) {
    event { id deliveries { id } }
    userErrors { field code message }
  }
}"""

DELIVERY = """
query($id: ID!) {
  delivery(id: $id) {
    id webhookId status cycle attemptCount maxAttempts nextAttemptAt lastAttemptAt
    completedAt
    event { id subject }
    attempts { number cycle startedAt durationMs responseStatus responseBody error succeeded }
  }
}"""


@dataclass(frozen=True)
class Subscription:
    id: str
    secret: str
    callback_url: str


class Service:
    """One test's running service, with the handful of calls delivery tests make."""

    def __init__(
        self, settings: Settings, services: Services, api: GraphQLClient, tenants: Tenants
    ) -> None:
        self.settings = settings
        self.services = services
        self.api = api
        self.tenants = tenants
        self.worker: asyncio.Task[None] | None = None

    # -- the worker ------------------------------------------------------------------

    def start_worker(self) -> None:
        """Start the real worker (with its maintenance loop) in this event loop."""
        assert self.worker is None, "the worker is already running"
        self.worker = asyncio.create_task(
            run_worker(self.services, install_signal_handlers=False), name="test-worker"
        )

    async def stop_worker(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    def check_worker(self) -> None:
        """Fail now if the worker stopped on its own (it stops quietly otherwise)."""
        if self.worker is not None and self.worker.done():
            error = None if self.worker.cancelled() else self.worker.exception()
            raise AssertionError(f"the worker stopped: {error!r}")

    # -- the API ---------------------------------------------------------------------

    async def subscribe(
        self,
        callback_url: str,
        *,
        api_key_params: list[dict[str, str]] | None = None,
        notification_email: str = "ops@company-a.example",
        headers: list[dict[str, str]] | None = None,
    ) -> Subscription:
        """Create a subscription of company A to ORDER_STATUS."""
        data = await self.api.data(
            CREATE_SUBSCRIPTION,
            {
                "input": {
                    "webhook": "ORDER_STATUS",
                    "callbackUrl": callback_url,
                    "notificationEmail": notification_email,
                    "apiKeyParams": api_key_params or [],
                    "headers": headers or [],
                }
            },
            key=self.tenants.key_a,
        )
        payload = data["createWebhookSubscription"]
        assert payload["userErrors"] == [], payload["userErrors"]
        return Subscription(payload["subscription"]["id"], payload["signingSecret"], callback_url)

    async def publish(
        self, payload: dict[str, Any] | None = None, *, subject: str | None = "order-1"
    ) -> str:
        """Publish an ORDER_STATUS event for company A (by default the payload of
        ``order_status_payload()``); returns its one delivery's id."""
        event = await self.publish_event(payload, subject=subject)
        [delivery] = event["deliveries"]
        return str(delivery["id"])

    async def publish_event(
        self, payload: dict[str, Any] | None = None, *, subject: str | None = "order-1"
    ) -> dict[str, Any]:
        data = await self.api.data(
            PUBLISH,
            {
                "input": {
                    "companyId": self.tenants.a,
                    "webhook": "ORDER_STATUS",
                    "payload": payload if payload is not None else order_status_payload(),
                    "subject": subject,
                }
            },
            key=self.tenants.publisher,
        )
        result = data["publishEvent"]
        assert result["userErrors"] == [], result["userErrors"]
        event: dict[str, Any] = result["event"]
        return event

    async def delivery(self, delivery_id: str) -> dict[str, Any]:
        """The delivery as company A reads it through GraphQL, attempts included."""
        data = await self.api.data(DELIVERY, {"id": delivery_id}, key=self.tenants.key_a)
        delivery: dict[str, Any] = data["delivery"]
        assert delivery is not None, f"no delivery {delivery_id}"
        return delivery

    async def wait_for_status(
        self, delivery_id: str, *statuses: str, timeout: float = 5.0
    ) -> dict[str, Any]:
        """Poll until the delivery's status is one of ``statuses``; return it."""
        last: dict[str, Any] = {}

        async def reached() -> bool:
            nonlocal last
            last = await self.delivery(delivery_id)
            return last["status"] in statuses

        await self.wait_until(
            reached, timeout, lambda: f"delivery still {last.get('status')}, not {statuses}"
        )
        return last

    async def wait_until(
        self,
        condition: Callable[[], Awaitable[bool]],
        timeout: float = 5.0,
        explain: Callable[[], str] = lambda: "condition not met",
    ) -> None:
        """Poll ``condition`` every 50 ms until it holds; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_worker()
            if await condition():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"after {timeout:g} s: {explain()}")
            await asyncio.sleep(0.05)

    async def wait_for_idle(self, delivery_id: str, timeout: float = 5.0) -> None:
        """Wait until no job of this delivery is queued or running (scheduled ones too)."""
        await self.wait_until(
            lambda: self._no_jobs(delivery_id),
            timeout,
            lambda: f"delivery {delivery_id} still has jobs",
        )

    async def _no_jobs(self, delivery_id: str) -> bool:
        rows = await self.sql(
            "SELECT count(*) AS n FROM procrastinate_jobs "
            "WHERE lock = %(lock)s AND status IN ('todo', 'doing')",
            lock=delivery_id,
        )
        return bool(rows[0]["n"] == 0)

    # -- the database, for what the API does not show --------------------------------

    async def sql(self, query: str, **arguments: Any) -> list[dict[str, Any]]:
        """Run one statement of the test's own; returns its rows (none for a write)."""
        async with (
            self.services.db.pool.connection() as connection,
            connection.cursor(row_factory=dict_row) as cursor,
        ):
            await cursor.execute(query, arguments)
            return await cursor.fetchall() if cursor.description else []


class Raised:
    """What calls run side by side raised, each named, instead of the first failure
    cancelling the others: ``await asyncio.gather(raised.by(a, "a"), raised.by(b, "b"))``."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    async def by(self, call: Awaitable[object], what: str) -> None:
        try:
            await call
        except Exception as error:  # an error the app lets through (a deadlock) included
            self.errors.append(f"{what}: {type(error).__name__}: {error}")


class OpenService(Protocol):
    def __call__(self, *, worker: bool = True, **overrides: Any) -> Awaitable[Service]: ...


@pytest.fixture(name="open_service")
async def open_service_fixture(database_url: str, tmp_path: Path) -> AsyncIterator[OpenService]:
    """``open_service(**overrides)`` opens the service with :data:`DEFAULTS` plus the
    test's overrides, once a test. Import this function to make the fixture available."""
    async with AsyncExitStack() as exits:
        opened: list[Service] = []

        async def open_(*, worker: bool = True, **overrides: Any) -> Service:
            assert not opened, "one service per test: the job queue app is shared"
            settings = make_settings(database_url, tmp_path, **{**DEFAULTS, **overrides})
            services = await exits.enter_async_context(open_services(settings))
            http = await exits.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=build_app(settings, services=services)),
                    base_url="http://testserver",
                )
            )
            service = Service(settings, services, GraphQLClient(http), await _tenants(services))
            # Registered last, so it runs first: the worker stops before its services close.
            exits.push_async_callback(service.stop_worker)
            if worker:
                service.start_worker()
            opened.append(service)
            return service

        yield open_


async def _tenants(services: Services) -> Tenants:
    a = await companies.create_company(services.db, "Company A", "company-a")
    b = await companies.create_company(services.db, "Company B", "company-b")
    key_a = await api_keys.create_key(services.db, "COMPANY", a.id)
    key_b = await api_keys.create_key(services.db, "COMPANY", b.id)
    publisher = await api_keys.create_key(services.db, "PUBLISHER", None)
    return Tenants(a.id, b.id, key_a.key, key_b.key, publisher.key)


def parse_time(value: str) -> datetime:
    """A GraphQL DateTime as an aware UTC datetime."""
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def email_time(value: str) -> str:
    """A GraphQL DateTime the way the failure email prints it: UTC, whole seconds, Z."""
    return parse_time(value).isoformat(timespec="seconds").replace("+00:00", "Z")


def verify(request: RecordedRequest, secret: str) -> Any:
    """Check a received request the way a subscriber would, with ``standardwebhooks``;
    returns the parsed body. Raises ``WebhookVerificationError`` when it does not verify."""
    return Webhook(secret).verify(request.body, dict(request.headers))
