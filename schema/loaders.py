"""Per-request DataLoaders: nested fields load in batches, one query per kind per level."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

from strawberry.dataloader import DataLoader

from app.companies import Company, company_from_row
from app.deliveries import Attempt, Delivery, attempts_of_deliveries, deliveries_of_events
from app.events import Event, events_by_id
from app.services import Services
from app.subscriptions import Subscription, SubscriptionSummary, subscriptions_by_id
from app.viewer import Viewer
from app.webhook_types import WebhookType, webhook_types_by_key

K = TypeVar("K")
V = TypeVar("V")


class SharedLoader(Generic[K, V]):
    """A DataLoader whose per-key futures survive the cancellation of one of their callers.

    Resolvers asking for the same key await one shared future. When a field fails,
    graphql-core cancels the sibling resolvers still running; cancelling one while it
    awaits would cancel the shared future itself, and every other resolver waiting for
    that key (in branches that did not fail) would raise CancelledError, failing the
    whole request with an HTTP 500. Each caller therefore awaits it through a shield.
    """

    def __init__(self, loader: DataLoader[K, V]) -> None:
        self._loader = loader

    async def load(self, key: K) -> V:
        return await asyncio.shield(self._loader.load(key))


def _loader(
    fetch: Callable[[list[K]], Coroutine[Any, Any, dict[K, V]]], default: Callable[[], V]
) -> SharedLoader[K, V]:
    async def load(keys: Sequence[K]) -> list[V]:
        found = await fetch(list(keys))
        return [found.get(key, default()) for key in keys]

    return SharedLoader(DataLoader(load_fn=load))


class Loaders:
    """The loaders of one operation, or of one update of a subscription: a loader caches
    what it loaded for as long as it lives, so it must not outlive what it serves."""

    def __init__(self, services: Services, viewer: Viewer | None) -> None:
        self._services = services
        self._viewer = viewer
        self._webhook_types: dict[str, WebhookType] | None = None
        self.event = _loader(self._events, lambda: None)
        self.subscription = _loader(self._subscriptions, lambda: None)
        self.company = _loader(self._companies, lambda: None)
        self.deliveries_of_event: SharedLoader[uuid.UUID, list[Delivery]] = _loader(
            self._deliveries_of_events, list
        )
        self.attempts_of_delivery: SharedLoader[uuid.UUID, list[Attempt]] = _loader(
            self._attempts, list
        )

    async def webhook_types(self) -> dict[str, WebhookType]:
        if self._webhook_types is None:
            self._webhook_types = await webhook_types_by_key(self._services.db)
        return self._webhook_types

    async def webhook_type(self, key: str) -> WebhookType:
        return (await self.webhook_types())[key]

    async def _events(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, Event | None]:
        return dict(await events_by_id(self._services, ids))

    async def _subscriptions(
        self, ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, Subscription | SubscriptionSummary | None]:
        assert self._viewer is not None  # deliveries are found for a viewer only
        return dict(await subscriptions_by_id(self._services, self._viewer, ids))

    async def _companies(self, ids: list[str]) -> dict[str, Company | None]:
        rows = await self._services.db.fetch_all("get_companies", ids=ids)
        return {row["id"]: company_from_row(row) for row in rows}

    async def _deliveries_of_events(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Delivery]]:
        return await deliveries_of_events(self._services, ids)

    async def _attempts(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Attempt]]:
        assert self._viewer is not None  # deliveries are found for a viewer only
        return await attempts_of_deliveries(self._services, self._viewer, ids)
