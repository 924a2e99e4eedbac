"""Process runners: the API server (uvicorn) and the standalone worker process."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from app.server import build_app
from app.services import Services, open_services
from app.settings import Settings
from app.worker import WorkerHealth, supervise_worker

logger = logging.getLogger(__name__)


def serve(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    with_worker: bool = False,
    banner: str | None = None,
) -> None:
    """Serve the API until SIGINT/SIGTERM; optionally with the worker in-process."""
    health = WorkerHealth()

    @asynccontextmanager
    async def background(services: Services) -> AsyncIterator[None]:
        if banner:
            print(banner, flush=True)
        if not with_worker:
            yield
            return
        async with supervise_worker(services, health):
            yield

    app = build_app(settings, background=background, worker_health=health if with_worker else None)
    uvicorn.run(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.request_timeout_seconds) + 5,
    )


def run_worker_process(settings: Settings) -> None:
    """The ``webhooks worker`` process: SIGTERM or SIGINT lets in-flight attempts finish,
    then exits. Until then the worker is supervised: when it stops on its own (the
    database went away and its LISTEN connection with it), it is started again."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def request_stop() -> None:
            # As with Procrastinate's own handlers: a second signal ends the process at once.
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, request_stop)
        async with open_services(settings) as services:
            logger.info("worker started (concurrency %d)", settings.worker_concurrency)
            # Leaving the block cancels the worker, which Procrastinate turns into a
            # graceful stop bounded by the request timeout.
            async with supervise_worker(
                services, WorkerHealth(), concurrency=settings.worker_concurrency
            ):
                await stop.wait()
            logger.info("worker stopped")

    asyncio.run(main())
