"""Delivery updates: one LISTEN connection per process, fanned out to live subscribers.

A trigger NOTIFYs ``webhooks_delivery_updates`` on every change of a delivery (see
migration 0004). The hub keeps one dedicated connection listening, reconnects when it
drops, and hands each notification to the subscribers whose company it belongs to.
Only ids travel on the channel; subscribers load the delivery with their own scoped
queries, so a company can never receive another company's data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

import psycopg

from app.database import listen

logger = logging.getLogger(__name__)

QUEUE_SIZE = 1000


@dataclass(frozen=True)
class DeliveryChange:
    delivery_id: uuid.UUID
    company_id: str
    subscription_id: uuid.UUID
    subject: str | None
    status: str


def parse_notification(payload: str) -> DeliveryChange | None:
    try:
        data = json.loads(payload)
        return DeliveryChange(
            delivery_id=uuid.UUID(data["id"]),
            company_id=str(data["company_id"]),
            subscription_id=uuid.UUID(data["subscription_id"]),
            subject=data.get("subject"),
            status=str(data["status"]),
        )
    except (ValueError, KeyError, TypeError):
        logger.warning("ignoring a malformed delivery notification")
        return None


class DeliveryUpdatesHub:
    """Fans delivery notifications out to per-subscriber queues, filtered by company."""

    def __init__(self, database_url: str, *, reconnect_delay: float = 1.0) -> None:
        self._database_url = database_url
        self._reconnect_delay = reconnect_delay
        self._subscribers: dict[int, tuple[str | None, asyncio.Queue[DeliveryChange]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    @asynccontextmanager
    async def subscribe(
        self, company_id: str | None
    ) -> AsyncIterator[asyncio.Queue[DeliveryChange]]:
        """A queue of the changes of ``company_id`` (None: every company, for publishers)."""
        queue: asyncio.Queue[DeliveryChange] = asyncio.Queue(QUEUE_SIZE)
        token = id(queue)
        self._subscribers[token] = (company_id, queue)
        self._ensure_listening()
        try:
            await asyncio.wait_for(self._listening.wait(), timeout=10)
            yield queue
        finally:
            self._subscribers.pop(token, None)

    def _ensure_listening(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="delivery-updates")

    async def _listen(self) -> None:
        # Once started, the listener runs for the life of the process (few connections,
        # no start/stop races); close() ends it.
        while True:
            try:
                notifications = listen(
                    self._database_url, "listen_delivery_updates", self._listening
                )
                async for payload in notifications:
                    self._dispatch(payload)
            except asyncio.CancelledError:
                raise
            except psycopg.Error:
                logger.warning("delivery updates: listener lost its connection; reconnecting")
                self._listening.clear()
                await asyncio.sleep(self._reconnect_delay)

    def _dispatch(self, payload: str) -> None:
        change = parse_notification(payload)
        if change is None:
            return
        for company_id, queue in list(self._subscribers.values()):
            if company_id is not None and company_id != change.company_id:
                continue
            with suppress(asyncio.QueueFull):  # a stalled client loses updates, not memory
                queue.put_nowait(change)

    async def close(self) -> None:
        self._subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
