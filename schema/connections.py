"""Relay-style connections over keyset pages (edges, nodes, pageInfo)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry

from app.core.pagination import Page
from app.domain import deliveries
from schema.context import Info
from schema.lookahead import selects
from schema.types import Delivery, Event, PageInfo, WebhookSubscription

# Where a connection's selection reaches its deliveries' attempts.
ATTEMPTS = (("nodes", "attempts"), ("edges", "node", "attempts"))


def _parts(page: Page[Any], convert: Callable[[Any], Any]) -> tuple[list[Any], PageInfo]:
    nodes = [convert(item) for item in page.items]
    return nodes, PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor)


@strawberry.type
class WebhookSubscriptionEdge:
    cursor: str
    node: WebhookSubscription


@strawberry.type
class WebhookSubscriptionConnection:
    edges: list[WebhookSubscriptionEdge]
    nodes: list[WebhookSubscription]
    page_info: PageInfo

    @classmethod
    def from_page(
        cls, page: Page[Any], convert: Callable[[Any], WebhookSubscription]
    ) -> WebhookSubscriptionConnection:
        nodes, info = _parts(page, convert)
        edges = [
            WebhookSubscriptionEdge(cursor=c, node=n)
            for c, n in zip(page.cursors, nodes, strict=True)
        ]
        return cls(edges=edges, nodes=nodes, page_info=info)


@strawberry.type
class EventEdge:
    cursor: str
    node: Event


@strawberry.type
class EventConnection:
    edges: list[EventEdge]
    nodes: list[Event]
    page_info: PageInfo

    @classmethod
    def from_page(cls, page: Page[Any], convert: Callable[[Any], Event]) -> EventConnection:
        nodes, info = _parts(page, convert)
        edges = [EventEdge(cursor=c, node=n) for c, n in zip(page.cursors, nodes, strict=True)]
        return cls(edges=edges, nodes=nodes, page_info=info)


@strawberry.type
class DeliveryEdge:
    cursor: str
    node: Delivery


@strawberry.type
class DeliveryConnection:
    edges: list[DeliveryEdge]
    nodes: list[Delivery]
    page_info: PageInfo

    @classmethod
    def from_page(cls, page: Page[Any], convert: Callable[[Any], Delivery]) -> DeliveryConnection:
        nodes, info = _parts(page, convert)
        edges = [DeliveryEdge(cursor=c, node=n) for c, n in zip(page.cursors, nodes, strict=True)]
        return cls(edges=edges, nodes=nodes, page_info=info)


async def delivery_connection(info: Info, page: Page[deliveries.Delivery]) -> DeliveryConnection:
    """The page as a connection; with its deliveries' attempts when they are selected.

    One query for the page's attempts, made here, lets each delivery resolve them without
    an await of its own (graphql-core's per-object await was most of a page's cost).
    """
    attempts = None
    if page.items and selects(info, *ATTEMPTS):
        # Through a loader: nested connections (each subscription's page of deliveries)
        # share one query for all their attempts.
        attempts = await info.context.loaders.attempts_of_page.load(
            tuple(delivery.id for delivery in page.items)
        )
    return DeliveryConnection.from_page(page, lambda model: Delivery.from_model(model, attempts))
