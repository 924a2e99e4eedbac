"""Probes: /healthz (the process lives), /readyz (it can serve), /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from app.delivery import metrics
from app.delivery.worker import WorkerHealth
from app.store.database import Database
from app.store.migrations import own_migrations
from app.store.services import Services

logger = logging.getLogger(__name__)

READINESS_TIMEOUT_SECONDS = 2.0


def routes(services: Callable[[], Services], worker_health: WorkerHealth | None) -> list[Route]:
    """The probes' routes; ``services`` gives the open services, ``worker_health`` the
    in-process worker's (None: no worker in this process)."""

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        checks = await readiness(services().db, worker_health)
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    gauges: metrics.QueueGauges | None = None

    async def metrics_endpoint(_: Request) -> Response:
        nonlocal gauges
        opened = services()
        if gauges is None:  # the services open with the app, after the routes are built
            gauges = metrics.QueueGauges(opened.settings.stalled_after_seconds)
        body, content_type = await metrics.render(opened.db, gauges)
        return Response(body, media_type=content_type)

    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
    ]


async def readiness(db: Database, worker_health: WorkerHealth | None = None) -> dict[str, bool]:
    """Whether the database answers in time and is migrated, has had the resources for
    recent statements (no class-53 error lately, see app/core/outages.py), and the worker (if
    any) runs."""
    checks: dict[str, bool] = {}
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            applied = await db.applied_migrations()
        checks["database"] = True
        checks["migrations"] = {m.name for m in own_migrations()} <= applied
    except Exception as error:  # any failure means "not ready"
        # An unreachable database is one line per probe (a load balancer probes every few
        # seconds for as long as it is away); anything else is a bug, with its traceback.
        expected = isinstance(error, TimeoutError | psycopg.Error | OSError)
        logger.warning(
            "readiness: database check failed (%s)", type(error).__name__, exc_info=not expected
        )
        checks["database"] = False
        checks["migrations"] = False
    checks["resources"] = not db.resource_alarm.raised
    if worker_health is not None:
        checks["worker"] = worker_health.running
    return checks
