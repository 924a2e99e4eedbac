"""Delivery updates: one LISTEN connection per process, fanned out to live subscribers.

A trigger NOTIFYs ``webhooks_delivery_updates`` on every change of a delivery (see
migrations 0004 and 0009). The hub keeps one dedicated connection listening, reconnects
when it drops, and hands each notification to the subscribers of the company it belongs
to. The channel carries ids and the state the change produced (status, attempt count,
times), no configuration and nothing a receiver answered; subscribers still load the
delivery with their own scoped queries, so a company can never receive another
company's data, and show the announced state: by the time a subscriber gets to a
notification the row may have moved on (a fast first attempt turns PENDING into
SUCCEEDED before the PENDING notification is read).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from app.core.delivery_status import DeliveryStatus
from app.store.database import listen

logger = logging.getLogger(__name__)

QUEUE_SIZE = 1000


@dataclass(frozen=True)
class DeliveryState:
    """The fields of a delivery that change, as one change left them."""

    status: DeliveryStatus
    cycle: int
    attempt_count: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_response_status: int | None
    completed_at: datetime | None


@dataclass(frozen=True)
class DeliveryChange:
    delivery_id: uuid.UUID
    company_id: str
    subscription_id: uuid.UUID
    subject: str | None
    status: str
    # None from a trigger older than migration 0009 (ids and status only).
    state: DeliveryState | None = None


def parse_notification(payload: str) -> DeliveryChange | None:
    try:
        data = json.loads(payload)
        return DeliveryChange(
            delivery_id=uuid.UUID(data["id"]),
            company_id=str(data["company_id"]),
            subscription_id=uuid.UUID(data["subscription_id"]),
            subject=data.get("subject"),
            status=str(data["status"]),
            state=_state(data) if "attempt_count" in data else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        logger.warning("ignoring a malformed delivery notification")
        return None


def _state(data: dict[str, Any]) -> DeliveryState:
    return DeliveryState(
        status=DeliveryStatus(data["status"]),  # a ValueError for an unknown one
        cycle=_integer(data["cycle"]),
        attempt_count=_integer(data["attempt_count"]),
        next_attempt_at=_moment(data["next_attempt_at"]),
        last_attempt_at=_moment(data["last_attempt_at"]),
        last_response_status=(
            None if data["last_response_status"] is None else _integer(data["last_response_status"])
        ),
        completed_at=_moment(data["completed_at"]),
    )


def _integer(value: Any) -> int:
    if type(value) is not int:
        raise TypeError("not an integer")
    return value


def _moment(value: Any) -> datetime | None:
    """A timestamptz as json_build_object writes it (ISO 8601 with an offset)."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("a time without a time zone")
    return moment


class DeliveryUpdatesHub:
    """Fans delivery notifications out to per-subscriber queues, filtered by company."""

    def __init__(self, database_url: str, *, reconnect_delay: float = 1.0) -> None:
        self._database_url = database_url
        self._reconnect_delay = reconnect_delay
        self._subscribers: dict[int, tuple[str, asyncio.Queue[DeliveryChange]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    @asynccontextmanager
    async def subscribe(self, company_id: str) -> AsyncIterator[asyncio.Queue[DeliveryChange]]:
        """A queue of the changes of ``company_id``'s deliveries."""
        queue: asyncio.Queue[DeliveryChange] = asyncio.Queue(QUEUE_SIZE)
        token = id(queue)
        self._subscribers[token] = (company_id, queue)
        self._ensure_listening()
        try:
            await asyncio.wait_for(self._listening.wait(), timeout=10)
            yield queue
        finally:
            self._subscribers.pop(token, None)

    @property
    def subscriber_count(self) -> int:
        """How many live subscriptions this process serves now (none while its LISTEN
        connection is not in place: they would hear nothing)."""
        return len(self._subscribers) if self._listening.is_set() else 0

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
            if company_id != change.company_id:
                continue
            with suppress(asyncio.QueueFull):  # a stalled client loses updates, not memory
                queue.put_nowait(change)

    async def close(self) -> None:
        self._subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
