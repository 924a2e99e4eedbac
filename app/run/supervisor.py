"""Worker supervision: the delivery worker (app/delivery/worker.py) runs inside the API
process or as the ``webhooks worker`` process, and is restarted whenever it stops on its
own (a lost database connection). While it waits to restart, the database is probed, and
the worker restarts as soon as a lost database answers again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.delivery.worker import WorkerHealth, run_worker
from app.store.services import Services

logger = logging.getLogger(__name__)

# A worker that ran this long before stopping is restarted after the shortest delay again.
HEALTHY_RUN_SECONDS = 60.0
MAX_RESTART_DELAY_SECONDS = 30.0
# While the worker waits to restart: how often the database is probed, and how long one
# probe may wait for a connection.
PROBE_INTERVAL_SECONDS = 0.5
PROBE_TIMEOUT_SECONDS = 1.0


async def wait_to_restart(services: Services, delay: float) -> bool:
    """Wait ``delay`` seconds before a restart, probing the database meanwhile.

    While it does not answer, the wait goes on past ``delay`` (a worker started then
    would only fail again); once it answers after not answering, the wait ends at once,
    instead of up to ``MAX_RESTART_DELAY_SECONDS`` after the outage. A worker that stopped
    while the database answers (a crash loop) waits the whole delay. Returns whether the
    database was found away.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + delay
    was_away = False
    while True:
        answers = await services.db.answers(PROBE_TIMEOUT_SECONDS)
        if answers and (was_away or loop.time() >= deadline):
            if was_away:
                logger.warning("the database answers again; restarting the worker")
            return was_away
        was_away = was_away or not answers
        pause = PROBE_INTERVAL_SECONDS
        if not was_away:
            pause = max(0.0, min(pause, deadline - loop.time()))
        await asyncio.sleep(pause)


@asynccontextmanager
async def supervise_worker(
    services: Services, health: WorkerHealth, *, concurrency: int | None = None
) -> AsyncIterator[WorkerHealth]:
    """Run the worker in this process (beside the API, or as ``webhooks worker``);
    restart it whenever it stops on its own.

    Procrastinate stops its worker quietly when a side task fails, e.g. its LISTEN
    connection when the database restarts; the worker must come back by itself.
    """

    async def supervise() -> None:
        delay = 1.0
        loop = asyncio.get_running_loop()
        while True:
            health.running = True
            started = loop.time()
            try:
                await run_worker(services, concurrency=concurrency, install_signal_handlers=False)
                health.last_error = "worker stopped"
            except asyncio.CancelledError:
                raise
            except Exception as error:
                health.last_error = f"{type(error).__name__}: {error}"
                logger.exception("in-process worker crashed; restarting")
            finally:
                health.running = False
            health.restarts += 1
            if loop.time() - started >= HEALTHY_RUN_SECONDS:
                delay = 1.0
            logger.warning("worker stopped on its own; restarting in %.0f s", delay)
            if await wait_to_restart(services, delay):
                delay = 1.0  # the database was away: its return is no crash loop
            else:
                delay = min(delay * 2, MAX_RESTART_DELAY_SECONDS)

    task = asyncio.create_task(supervise(), name="worker-supervisor")
    try:
        yield health
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
