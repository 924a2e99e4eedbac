"""Service-level fixtures: settings, opened services, a GraphQL client, tenants, a worker.

The GraphQL client speaks HTTP to the real ASGI app (Starlette + Strawberry) through
httpx's ASGI transport, with the services of the test's own database.
"""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from app.core.secret_box import generate_key
from app.core.settings import Settings
from app.core.viewer import Viewer
from app.delivery.worker import run_worker
from app.domain import api_keys, companies
from app.domain.events import Event, EventLimits, NewEvent, publish_event
from app.domain.subscriptions import (
    CallbackChecks,
    NewSubscription,
    Subscription,
    create_subscription,
)
from app.run.runner import server_config
from app.store.services import Services, open_services
from app.web.server import build_app
from tests.smtp import free_port

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for tests: loopback receivers allowed, short intervals, a fresh key."""
    base = Settings(
        database_url=database_url,
        env="development",
        data_dir=str(data_dir),
        secret_key=generate_key(),
        allowed_networks=LOOPBACK,
        retry_interval_seconds=0.5,
        request_timeout_seconds=2.0,
        email_window_seconds=0.0,
        poll_interval_seconds=0.1,
        stalled_after_seconds=5.0,
        worker_concurrency=20,
    )
    return base.with_overrides(**overrides)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with open_services(settings) as opened:
        yield opened


class GraphQLError(AssertionError):
    pass


class GraphQLClient:
    """Posts GraphQL documents to /graphql with a bearer key."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, *, key: str | None
    ) -> dict[str, Any]:
        """The whole response body (``data`` and ``errors``)."""
        headers = {"authorization": f"Bearer {key}"} if key else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(
        self, query: str, variables: dict[str, Any] | None = None, *, key: str | None
    ) -> dict[str, Any]:
        """``data`` of a response that must have no errors."""
        body = await self.post(query, variables, key=key)
        if body.get("errors"):
            raise GraphQLError(body["errors"])
        data: dict[str, Any] = body["data"]
        return data


@pytest.fixture
async def http(settings: Settings, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(settings, services=services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def api(http: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(http)


@dataclass(frozen=True)
class Tenants:
    """Two companies with a COMPANY key each, and a PUBLISHER key."""

    a: str
    b: str
    key_a: str
    key_b: str
    publisher: str


def company_viewer(company_id: str) -> Viewer:
    """The viewer a COMPANY key of ``company_id`` stands for, for tests that call the domain
    directly (outside the API, so no database scope is bound: they run as the owner)."""
    return Viewer(role="COMPANY", key_prefix="pwk_0000test", company_id=company_id)


async def create_subscription_for(
    services: Services, company_id: str, new: NewSubscription
) -> tuple[Subscription, str]:
    """``create_subscription`` as a COMPANY key of ``company_id`` asks for it."""
    return await create_subscription(
        services.db,
        services.secret_box,
        CallbackChecks.of(services.settings, services.resolver),
        company_viewer(company_id),
        new,
    )


async def publish_event_with(
    services: Services,
    new: NewEvent,
    *,
    is_test: bool = False,
    only_subscription: uuid.UUID | None = None,
) -> Event:
    """``publish_event`` with the database and the limits of ``services``."""
    return await publish_event(
        services.db,
        EventLimits.of(services.settings),
        new,
        is_test=is_test,
        only_subscription=only_subscription,
    )


@pytest.fixture
async def tenants(services: Services) -> Tenants:
    a = await companies.create_company(services.db, "Company A", "company-a")
    b = await companies.create_company(services.db, "Company B", "company-b")
    key_a = await api_keys.create_key(services.db, "COMPANY", a.id)
    key_b = await api_keys.create_key(services.db, "COMPANY", b.id)
    publisher = await api_keys.create_key(services.db, "PUBLISHER", None)
    return Tenants(a.id, b.id, key_a.key, key_b.key, publisher.key)


@pytest.fixture
async def worker(services: Services) -> AsyncIterator[asyncio.Task[None]]:
    """The real Procrastinate worker, in this process, for the duration of the test."""
    task = asyncio.create_task(run_worker(services, install_signal_handlers=False))
    await asyncio.sleep(0.2)
    yield task
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@asynccontextmanager
async def served(
    settings: Settings, services: Services, port: int | None = None
) -> AsyncIterator[int]:
    """The real app on a real socket (websockets need one), served by uvicorn with the
    configuration of ``webhooks serve``, on ``port`` (default: a free one) of 127.0.0.1;
    yields the port."""
    port = port or free_port()
    app = build_app(settings, services=services)
    server = uvicorn.Server(server_config(app, settings, host="127.0.0.1", port=port))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # it failed to start: say why
        await asyncio.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        await task
