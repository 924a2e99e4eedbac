"""Attempt loads: the deliveries of attempts that start together, loaded in one statement.

The worker starts a fetched batch of jobs at once (app/store/queue.py), and each attempt
first loads its delivery. Each asking on its own made a round trip and a statement per
attempt; here every load asked for in one turn of the event loop waits for a single
``load_attempt_contexts`` statement, run in the next. An attempt alone waits for no
one: its load runs in the very next turn.
"""

from __future__ import annotations

import asyncio
import uuid

from app.delivery.outgoing import OutgoingDelivery, outgoing_from_row
from app.store.database import WORKER_SCOPE, Database, bind_scope


class AttemptLoads:
    """Loads attempts' deliveries, those asked for in one turn of the loop together."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._waiting: dict[uuid.UUID, list[asyncio.Future[OutgoingDelivery | None]]] = {}
        self._loading: set[asyncio.Task[None]] = set()

    async def load(self, delivery_id: uuid.UUID) -> OutgoingDelivery | None:
        """The delivery ``delivery_id`` with what its attempt needs; None if it is gone.
        A failed load raises the statement's error in every attempt that waited for it."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[OutgoingDelivery | None] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._load_waiting)
        self._waiting.setdefault(delivery_id, []).append(answer)
        return await answer

    def _load_waiting(self) -> None:
        waiting, self._waiting = self._waiting, {}
        task = asyncio.create_task(self._load_batch(waiting), name="load attempts")
        # The loop keeps only a weak reference to a task.
        self._loading.add(task)
        task.add_done_callback(self._loading.discard)

    async def _load_batch(
        self, waiting: dict[uuid.UUID, list[asyncio.Future[OutgoingDelivery | None]]]
    ) -> None:
        bind_scope(WORKER_SCOPE)  # a task of its own, as the worker's attempts run
        try:
            rows = await self._db.fetch_all("load_attempt_contexts", ids=list(waiting))
        except asyncio.CancelledError:
            for answers in waiting.values():
                for answer in answers:
                    answer.cancel()
            raise
        except Exception as error:
            for answers in waiting.values():
                for answer in answers:
                    if not answer.done():
                        answer.set_exception(error)
            return
        found = {row["id"]: outgoing_from_row(row) for row in rows}
        for delivery_id, answers in waiting.items():
            for answer in answers:
                if not answer.done():
                    answer.set_result(found.get(delivery_id))
