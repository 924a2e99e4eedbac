"""Per-request DataLoaders: nested fields load in batches, one query per kind per level."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from strawberry.dataloader import DataLoader

from app.core.delivery_status import DeliveryStatus
from app.core.pagination import Page, PageRequest
from app.core.viewer import Viewer
from app.domain.companies import Company, companies_by_id
from app.domain.deliveries import (
    Attempt,
    Delivery,
    SentDelivery,
    SubjectQueue,
    attempts_of_deliveries,
    deliveries_of_events,
    deliveries_of_subscriptions,
    event_bodies,
    queue_heads,
    sent_deliveries,
)
from app.domain.events import Event, events_by_id
from app.domain.subscriptions import Subscription, SubscriptionSummary, subscriptions_by_id
from app.domain.webhook_types import WebhookType, webhook_types_by_key
from app.store.database import Database

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


@dataclass(frozen=True)
class SubscriptionPage:
    """A page of one subscription's deliveries, as a viewer asks for it."""

    viewer: Viewer
    subscription_id: uuid.UUID
    request: PageRequest
    status: DeliveryStatus | None = None


class Loaders:
    """The loaders of one operation, or of one update of a subscription: a loader caches
    what it loaded for as long as it lives, so it must not outlive what it serves."""

    def __init__(self, db: Database, viewer: Viewer | None) -> None:
        self._db = db
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
        self.sent_delivery: SharedLoader[uuid.UUID, SentDelivery | None] = _loader(
            self._sent_deliveries, lambda: None
        )
        self.event_body: SharedLoader[uuid.UUID, str | None] = _loader(
            self._event_bodies, lambda: None
        )
        self.queue_head: SharedLoader[SubjectQueue, Delivery | None] = _loader(
            self._queue_heads, lambda: None
        )
        # Nested under a list (each delivery's subscription, say), every subscription's
        # page would otherwise be a query of its own.
        self.deliveries_of_subscription: SharedLoader[SubscriptionPage, Page[Delivery]] = _loader(
            self._subscription_pages, lambda: Page([], [], False)
        )
        # The attempts of whole pages: the pages of nested connections share one query.
        self.attempts_of_page: SharedLoader[
            tuple[uuid.UUID, ...], dict[uuid.UUID, list[Attempt]]
        ] = _loader(self._attempts_of_pages, dict)

    async def webhook_types(self) -> dict[str, WebhookType]:
        if self._webhook_types is None:
            self._webhook_types = await webhook_types_by_key(self._db)
        return self._webhook_types

    async def webhook_type(self, key: str) -> WebhookType:
        return (await self.webhook_types())[key]

    def _found_for(self) -> Viewer:
        # Events, deliveries, their attempts and subscriptions are found for a viewer
        # only: what each may show depends on who asks.
        if self._viewer is None:
            raise RuntimeError("deliveries are loaded for a viewer only")
        return self._viewer

    async def _events(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, Event | None]:
        return dict(await events_by_id(self._db, self._found_for(), ids))

    async def _subscriptions(
        self, ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, Subscription | SubscriptionSummary | None]:
        return dict(await subscriptions_by_id(self._db, self._found_for(), ids))

    async def _companies(self, ids: list[str]) -> dict[str, Company | None]:
        return dict(await companies_by_id(self._db, ids))

    async def _deliveries_of_events(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Delivery]]:
        return await deliveries_of_events(self._db, self._found_for(), ids)

    async def _attempts(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Attempt]]:
        return await attempts_of_deliveries(self._db, self._found_for(), ids)

    async def _sent_deliveries(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, SentDelivery | None]:
        return dict(await sent_deliveries(self._db, self._found_for(), ids))

    async def _event_bodies(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, str | None]:
        return await event_bodies(self._db, self._found_for(), ids)

    async def _queue_heads(self, queues: list[SubjectQueue]) -> dict[SubjectQueue, Delivery | None]:
        return dict(await queue_heads(self._db, self._found_for(), queues))

    async def _subscription_pages(
        self, keys: list[SubscriptionPage]
    ) -> dict[SubscriptionPage, Page[Delivery]]:
        # One query for each kind of page asked for (usually one kind: the same field of
        # the same document under every parent).
        kinds: dict[tuple[Viewer, PageRequest, DeliveryStatus | None], list[uuid.UUID]] = (
            defaultdict(list)
        )
        for key in keys:
            kinds[(key.viewer, key.request, key.status)].append(key.subscription_id)
        found: dict[SubscriptionPage, Page[Delivery]] = {}
        for (viewer, request, status), ids in kinds.items():
            pages = await deliveries_of_subscriptions(
                self._db, viewer, list(dict.fromkeys(ids)), request, status
            )
            for subscription_id, page in pages.items():
                found[SubscriptionPage(viewer, subscription_id, request, status)] = page
        return found

    async def _attempts_of_pages(
        self, pages: list[tuple[uuid.UUID, ...]]
    ) -> dict[tuple[uuid.UUID, ...], dict[uuid.UUID, list[Attempt]]]:
        ids = list(dict.fromkeys(delivery_id for page in pages for delivery_id in page))
        attempts = await attempts_of_deliveries(self._db, self._found_for(), ids)
        return {
            page: {delivery_id: attempts.get(delivery_id, []) for delivery_id in page}
            for page in pages
        }
