"""Process runners: the API server (uvicorn) and the standalone worker process.

Every long-running command (``serve``, ``worker``, ``dev``) stops the same way: the first
SIGTERM or SIGINT starts a graceful stop (requests in flight are answered, attempts in
flight are recorded), and the process then exits with status 0. A second signal cuts the
wait short (for the API server: a second SIGINT, as uvicorn does).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import STARTUP_FAILURE

from app.core import event_loop
from app.core.settings import Settings
from app.delivery.worker import WorkerHealth
from app.run.supervisor import supervise_worker
from app.store.services import Services, open_services
from app.web.refusals import body_cap
from app.web.server import build_app

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
        freeze_startup_objects()
        if not with_worker:
            yield
            return
        async with supervise_worker(services, health):
            yield

    app = build_app(settings, background=background, worker_health=health if with_worker else None)
    config = server_config(app, settings, host=host or settings.host, port=port or settings.port)
    server = GracefulServer(config, banner=banner)
    server.run()
    if not server.started:
        # As uvicorn.run does: the lifespan failed to start (the port taken exits earlier).
        raise SystemExit(STARTUP_FAILURE)


def server_config(app: ASGIApp, settings: Settings, *, host: str, port: int) -> uvicorn.Config:
    """How uvicorn serves the API (also used by the tests that need a real server)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.request_timeout_seconds) + 5,
        # A websocket message is bounded like a request body (uvicorn's default: 16 MiB).
        ws_max_size=body_cap(settings),
        # The client address (rate limits) comes from X-Forwarded-For only when a configured
        # proxy sent it; uvicorn's default trusts whatever reaches it from 127.0.0.1.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies),
    )


def freeze_startup_objects() -> None:
    """Leave what start-up built (modules, the GraphQL schema, settings: tens of thousands
    of objects that live as long as the process) out of every later garbage collection.

    Python's full collections walk every tracked object; in the API process they came every
    few dozen requests and made most of the slowest ``publishEvent`` calls (benchmark phase
    G; README, "Performance"). Frozen objects are never walked again, nor freed, which is
    what they would be anyway; what start-up left as garbage is collected first.
    """
    gc.collect()
    gc.freeze()


class GracefulServer(uvicorn.Server):
    """uvicorn's server, except that a graceful stop returns instead of killing the process.

    Once it has shut down after SIGTERM or SIGINT, uvicorn raises the same signal again
    so that the default action ends the process: exit status -15 (or a KeyboardInterrupt)
    after a clean stop, and no code after ``run()`` ever runs (``webhooks dev`` would leave
    its embedded PostgreSQL behind). Here the signals are handled while serving and not
    raised again: ``run()`` returns, and the command exits 0.

    ``banner`` is printed once the socket listens, not before: a port taken by another
    process must not look like a running service.
    """

    def __init__(self, config: uvicorn.Config, *, banner: str | None = None) -> None:
        super().__init__(config)
        self.banner = banner

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.banner:
            print(self.banner, flush=True)

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {signum: signal.signal(signum, self.handle_exit) for signum in STOP_SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block SIGTERM interrupts like Ctrl-C (KeyboardInterrupt): a command
    stopped while still starting up runs its ``finally`` clauses (``webhooks dev`` stops
    its embedded PostgreSQL) and exits 130, as after Ctrl-C. Once serving, uvicorn's
    graceful handlers take over."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_worker_process(settings: Settings) -> None:
    """The ``webhooks worker`` process: SIGTERM or SIGINT lets in-flight attempts finish,
    then exits. Until then the worker is supervised: when it stops on its own (the
    database went away and its LISTEN connection with it), it is started again."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def request_stop() -> None:
            # As with Procrastinate's own handlers: a second signal ends the process at once.
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)
            stop.set()

        for signum in STOP_SIGNALS:
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

    event_loop.run(main())
