"""Companies, keys and subscriptions for the benchmark, made through the domain functions,
and a GraphQL client for publishing and reading over HTTP or in-process ASGI."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from app.core.delivery_ordering import DeliveryOrdering
from app.core.settings import Settings
from app.core.viewer import Viewer
from app.domain import api_keys, companies
from app.domain.subscriptions import CallbackChecks, NewSubscription, create_subscription
from app.run.runner import freeze_startup_objects
from app.store.services import Services, open_services
from app.web.server import build_app

WEBHOOK = "ORDER_STATUS"
# Every event carries the catalogue's own sample: an order as the order system publishes
# it, valid against the ORDER_STATUS schema, so publishing is measured with its real size.
SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "catalogue" / "order_status.sample.json"
PAYLOAD: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"))
# The payload as publishEvent encodes it into every delivery body (compact, UTF-8); its
# length is the payload size the report states.
PAYLOAD_JSON = json.dumps(PAYLOAD, separators=(",", ":"), ensure_ascii=False).encode()

PUBLISH = """
mutation Publish($input: PublishEventInput!) {
  publishEvent(input: $input) { event { id } userErrors { code message } }
}
"""
PUBLISH_MANY = """
mutation PublishMany($input: PublishEventsInput!) {
  publishEvents(input: $input) {
    results { event { id } userErrors { code message } }
    userErrors { code message }
  }
}
"""


async def create_company(services: Services, company_id: str) -> str:
    await companies.create_company(services.db, company_id, company_id)
    return company_id


async def company_key(services: Services, company_id: str) -> str:
    return (await api_keys.create_key(services.db, "COMPANY", company_id)).key


async def publisher_key(services: Services) -> str:
    return (await api_keys.create_key(services.db, "PUBLISHER", None)).key


async def subscribe(
    services: Services,
    company_id: str,
    urls: list[str],
    filters: list[dict[str, Any]] | None = None,
    ordering: DeliveryOrdering = DeliveryOrdering.NONE,
) -> None:
    """One ORDER_STATUS subscription per URL (URLs must differ: they are unique per
    company), with the content filter of the same index when ``filters`` are given."""
    checks = CallbackChecks.of(services.settings, services.resolver)
    viewer = Viewer(role="COMPANY", key_prefix="pwk_00bench", company_id=company_id)
    for index, url in enumerate(urls):
        await create_subscription(
            services.db,
            services.secret_box,
            checks,
            viewer,
            NewSubscription(
                webhook_key=WEBHOOK,
                callback_url=url,
                notification_email="ops@bench.invalid",
                filter=None if filters is None else filters[index],
                ordering=ordering,
            ),
        )


class GraphQLClient:
    """Posts documents to /graphql with a bearer key; raises on any GraphQL error."""

    def __init__(self, http: httpx.AsyncClient, key: str) -> None:
        self.http = http
        self.headers = {"authorization": f"Bearer {key}"}
        # Absolute and parsed once: httpx re-parses a string URL on every request, which
        # showed up in profiles of the in-process API (same process as this client).
        self.url = http.base_url.join("/graphql")

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.http.post(
            self.url,
            json={"query": query, "variables": variables or {}},
            headers=self.headers,
        )
        body: dict[str, Any] = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise RuntimeError(f"GraphQL failed ({response.status_code}): {body}")
        data: dict[str, Any] = body["data"]
        return data

    async def publish(
        self, company_id: str, subject: str, payload: dict[str, Any] | None = None
    ) -> float:
        """Publish one event (``payload``, else PAYLOAD); returns the wall-clock time
        (time.time()) it was sent at."""
        sent = time.time()
        data = await self.data(
            PUBLISH,
            {
                "input": {
                    "companyId": company_id,
                    "webhook": WEBHOOK,
                    "subject": subject,
                    "payload": PAYLOAD if payload is None else payload,
                }
            },
        )
        errors = data["publishEvent"]["userErrors"]
        if errors:
            raise RuntimeError(f"publishEvent refused: {errors}")
        return sent

    async def publish_batch(self, company_id: str, subjects: list[str]) -> float:
        """Publish one event (PAYLOAD) per subject in one ``publishEvents`` call; returns
        the wall-clock time it was sent at."""
        sent = time.time()
        events = [
            {"companyId": company_id, "webhook": WEBHOOK, "subject": subject, "payload": PAYLOAD}
            for subject in subjects
        ]
        data = (await self.data(PUBLISH_MANY, {"input": {"events": events}}))["publishEvents"]
        errors = data["userErrors"] + [
            error for result in data["results"] for error in result["userErrors"]
        ]
        if errors:
            raise RuntimeError(f"publishEvents refused: {errors}")
        return sent


@asynccontextmanager
async def in_process_api(settings: Settings) -> AsyncIterator[tuple[Services, httpx.AsyncClient]]:
    """The service's real ASGI app (Starlette, middlewares, Strawberry) in this process,
    and an HTTP client speaking to it without a socket."""
    async with open_services(settings) as services:
        app = build_app(settings, services=services)
        # As `webhooks serve` does once started (its lifespan, which ASGITransport does not
        # run): start-up's objects left out of every later garbage collection, so that a
        # full collection here costs what it costs the served API.
        freeze_startup_objects()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench.invalid", timeout=60
        ) as http:
            yield services, http
