"""Relay-style connections over keyset pages (edges, nodes, pageInfo)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Self, TypeVar

import strawberry

from app.core.pagination import Page
from app.domain import deliveries
from schema.context import Info
from schema.lookahead import selects
from schema.types import Delivery, Event, PageInfo, WebhookSubscription

# Where a connection's selection reaches its deliveries' attempts.
ATTEMPTS = (("nodes", "attempts"), ("edges", "node", "attempts"))


T = TypeVar("T")


@strawberry.type
class Edge(Generic[T]):
    """One node of a page and the cursor to resume after it; named ``<Node>Edge`` in the schema."""

    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    """A page of nodes, as edges and as nodes; named ``<Node>Connection`` in the schema."""

    edges: list[Edge[T]]
    nodes: list[T]
    page_info: PageInfo

    @classmethod
    def from_page(cls, page: Page[Any], convert: Callable[[Any], T]) -> Self:
        nodes = [convert(item) for item in page.items]
        edges = [Edge(cursor=c, node=n) for c, n in zip(page.cursors, nodes, strict=True)]
        info = PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor)
        return cls(edges=edges, nodes=nodes, page_info=info)


# Named subclasses rather than aliases of Connection[...]: a lazy annotation
# (WebhookSubscription.deliveries) must find a class. Each edge type is Strawberry's name
# for the specialised generic: DeliveryEdge for Edge[Delivery].
@strawberry.type
class WebhookSubscriptionConnection(Connection[WebhookSubscription]):
    pass


@strawberry.type
class EventConnection(Connection[Event]):
    pass


@strawberry.type
class DeliveryConnection(Connection[Delivery]):
    pass


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
