"""The delivery worker: the real Procrastinate worker plus our recovery loop.

``run_worker`` runs until cancelled or signalled. Beside Procrastinate it runs a
maintenance loop that re-queues stalled jobs (a SIGKILLed worker leaves its job in
``doing``), deliveries whose job was lost, and failure emails whose job was lost.
What restarts it when it stops on its own is app/run/supervisor.py.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from app.core.settings import Settings
from app.delivery.attempt_loads import AttemptLoads
from app.delivery.attempts import give_up
from app.delivery.endpoint_health import deactivate_failing_subscriptions
from app.delivery.fairness import InFlight, slow_after_seconds
from app.delivery.mailer import Mailer, mailer_from_settings
from app.delivery.notices import EmailSlots
from app.delivery.pacing import WakeUps
from app.delivery.transport import Transport
from app.store.database import WORKER_SCOPE, bind_scope
from app.store.queue import (
    DELETE_JOBS,
    DELIVERY_QUEUE,
    MAINTENANCE_QUEUE,
    NOTICE_QUEUE,
    defer_attempts,
    defer_notice,
    orphaned_attempts,
    requeue_stalled_jobs,
    run_punctual_worker,
    subscriptions_with_unsent_notices,
    wake_delivery_workers,
)
from app.store.services import Services

logger = logging.getLogger(__name__)

ORPHAN_GRACE_SECONDS = 30.0
# An attempt whose job was lost or failed this many times is not sent again: something
# keeps it from being recorded (see app/delivery/attempts.py), and every re-queue may send it once
# more. The delivery ends FAILED instead, and its notification email says so.
MAX_REQUEUES = 3
GIVE_UP_REASON = (
    "not recorded: this attempt's job was lost or failed again after {requeues} re-queues "
    "(see the worker log); the receiver may have got it"
)
MAINTENANCE_STOP_SECONDS = 5.0
HEALTH_CHECK_SECONDS = 60.0


@dataclass
class WorkerRuntime:
    """What the tasks need, handed to them through Procrastinate's job context."""

    services: Services
    transport: Transport
    mailer: Mailer
    in_flight: InFlight
    email_slots: EmailSlots
    wake_ups: WakeUps
    loads: AttemptLoads


@dataclass
class WorkerHealth:
    """Read by /readyz: whether the in-process worker is running right now."""

    running: bool = False
    restarts: int = 0
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def outbox_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "outbox"


def build_transport(settings: Settings, services: Services, concurrency: int) -> Transport:
    return Transport(
        timeout_seconds=settings.request_timeout_seconds,
        allowed_networks=settings.allowed_networks,
        resolver=services.resolver,
        max_connections=concurrency + 10,
        require_https=settings.is_production,
    )


async def run_worker(
    services: Services,
    *,
    concurrency: int | None = None,
    mailer: Mailer | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Run the Procrastinate worker and the maintenance loop until stopped."""
    settings = services.settings
    concurrency = concurrency or settings.worker_concurrency
    transport = build_transport(settings, services, concurrency)
    mailer = mailer or mailer_from_settings(
        settings.smtp_url, outbox_dir(settings), timeout=settings.smtp_timeout_seconds
    )
    runtime = WorkerRuntime(
        services=services,
        transport=transport,
        mailer=mailer,
        in_flight=InFlight.for_worker(
            concurrency,
            slow_after_seconds(settings.slow_attempt_seconds, settings.request_timeout_seconds),
        ),
        email_slots=EmailSlots(settings.email_concurrency),
        wake_ups=WakeUps(partial(wake_delivery_workers, services.db)),
        loads=AttemptLoads(services.db),
    )
    heartbeat = max(1.0, settings.stalled_after_seconds / 4)
    async with transport:
        stopping = asyncio.Event()
        maintenance = asyncio.create_task(maintenance_loop(services, stopping), name="maintenance")
        try:
            await run_punctual_worker(
                services.queue,
                queues=[DELIVERY_QUEUE, NOTICE_QUEUE, MAINTENANCE_QUEUE],
                concurrency=concurrency,
                wait=True,
                fetch_job_polling_interval=settings.poll_interval_seconds,
                # In-flight attempts are bounded by the request timeout; let them finish.
                shutdown_graceful_timeout=settings.request_timeout_seconds + 2,
                additional_context={"runtime": runtime},
                install_signal_handlers=install_signal_handlers,
                update_heartbeat_interval=heartbeat,
                stalled_worker_timeout=settings.stalled_after_seconds,
                delete_jobs=DELETE_JOBS,
            )
        finally:
            # The cancellation alone is not enough: when the database came back after an
            # outage, it was lost at times (the loop kept running, cancel pending, most
            # likely swallowed by asyncio.wait_for in Python 3.11 inside psycopg_pool's
            # connection wait) and waiting for the loop hung the worker for good. The flag
            # ends the loop anyway, and the wait is bounded.
            stopping.set()
            runtime.wake_ups.close()
            maintenance.cancel()
            await asyncio.wait({maintenance}, timeout=MAINTENANCE_STOP_SECONDS)
            if not maintenance.done():
                logger.warning("maintenance loop still running; leaving it behind")


async def maintenance_loop(services: Services, stopping: asyncio.Event | None = None) -> None:
    interval = max(0.5, min(5.0, services.settings.stalled_after_seconds / 4))
    bind_scope(WORKER_SCOPE)  # this loop runs in a task of its own
    loop = asyncio.get_running_loop()
    next_health_check = loop.time()
    while stopping is None or not stopping.is_set():
        try:
            await recover(services)
            if loop.time() >= next_health_check:
                await deactivate_failing_subscriptions(services)
                next_health_check = loop.time() + HEALTH_CHECK_SECONDS
        except asyncio.CancelledError:
            raise
        except Exception:  # the database may be down; try again next round
            logger.warning("maintenance round failed", exc_info=True)
        await asyncio.sleep(interval)


async def recover(services: Services) -> dict[str, int]:
    """One maintenance round; returns how many of each thing it re-queued."""
    stalled = await requeue_stalled_jobs(
        services.queue, seconds_since_heartbeat=services.settings.stalled_after_seconds
    )
    grace = max(ORPHAN_GRACE_SECONDS, services.settings.stalled_after_seconds * 2)
    async with services.db.transaction() as tx:
        orphans = await orphaned_attempts(tx, grace_seconds=grace, limit=500)
        requeue = [orphan.job for orphan in orphans if orphan.requeues <= MAX_REQUEUES]
        hopeless = [orphan.job for orphan in orphans if orphan.requeues > MAX_REQUEUES]
        await defer_attempts(services.queue, tx, requeue)
    for job in hopeless:
        # Each in its own transaction: one that cannot be ended must not hold up the rest.
        try:
            await give_up(services, job.delivery_id, GIVE_UP_REASON.format(requeues=MAX_REQUEUES))
        except Exception:
            logger.exception("could not give up on delivery %s", job.delivery_id)
    unsent = await subscriptions_with_unsent_notices(
        services.db, older_than_seconds=services.settings.email_window_seconds + grace
    )
    for subscription_id in unsent:
        await defer_notice(services.queue, None, subscription_id, delay_seconds=0)
    if orphans or unsent:
        logger.warning(
            "re-queued %d lost deliveries (gave up on %d), %d lost email jobs",
            len(requeue),
            len(hopeless),
            len(unsent),
        )
    return {
        "stalled": stalled,
        "orphans": len(orphans),
        "given_up": len(hopeless),
        "notices": len(unsent),
    }
