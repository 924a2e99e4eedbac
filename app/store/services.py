"""Services: the long-lived parts every entry point (API, worker, CLI) works with."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import procrastinate

from app.core.secret_box import SecretBox, generate_key
from app.core.settings import Settings, SettingsError
from app.core.target_policy import Resolver, SystemResolver
from app.store.connection_limits import ConnectionLimits, limited_conninfo
from app.store.database import PUBLISHER_SCOPE, WORKER_SCOPE, Database
from app.store.delivery_updates import DeliveryUpdatesHub
from app.store.queue import queue as default_queue


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    secret_box: SecretBox
    queue: procrastinate.App
    resolver: Resolver = field(default_factory=SystemResolver)
    updates: DeliveryUpdatesHub | None = None


def secret_box_for(settings: Settings) -> SecretBox:
    """The encryption box for secrets at rest.

    Production must be given ``WEBHOOKS_SECRET_KEY`` (settings refuse to load without it).
    Development keeps a generated key in the data directory so restarts can still decrypt.
    """
    key = settings.secret_key
    if key is None:
        key = development_secret_key(Path(settings.data_dir))
    return SecretBox(key, settings.previous_secret_keys)


def development_secret_key(data_dir: Path) -> str:
    """Read, or create once, the development master key in ``data_dir``."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    return key


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The database waits' bounds the settings ask for."""
    return ConnectionLimits(
        connect_seconds=settings.db_connect_timeout_seconds,
        dead_after_seconds=settings.db_dead_after_seconds,
        statement_seconds=settings.db_statement_timeout_seconds,
        pool_wait_seconds=settings.db_pool_timeout_seconds,
    )


@asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    queue: procrastinate.App = default_queue,
    resolver: Resolver | None = None,
) -> AsyncIterator[Services]:
    """Open the database pools and the job queue; close them on exit.

    Besides the main pool (shared with Procrastinate) there is one pool for the worker's
    role and one for the publisher's, filled only when used (see app/store/database.py).
    """
    url = settings.database_url
    if url is None:
        raise SettingsError("WEBHOOKS_DATABASE_URL (or DATABASE_URL) is not set")
    limits = connection_limits(settings)
    pool = Database.create_pool(url, max_size=settings.db_pool_max_size, limits=limits)
    role_pools = {
        scope: Database.create_pool(
            url, min_size=0, max_size=settings.db_pool_max_size, role=scope.role, limits=limits
        )
        for scope in (WORKER_SCOPE, PUBLISHER_SCOPE)
    }
    # A fresh connector each time: Procrastinate's connector keeps an external pool after
    # closing and would ignore the next one.
    with queue.replace_connector(procrastinate.PsycopgConnector()):
        async with AsyncExitStack() as opened:
            for each_pool in (pool, *role_pools.values()):
                await opened.enter_async_context(each_pool)
            await opened.enter_async_context(queue.open_async(pool))
            updates = DeliveryUpdatesHub(limited_conninfo(url, limits))
            try:
                yield Services(
                    settings=settings,
                    db=Database(pool, role_pools),
                    secret_box=secret_box_for(settings),
                    queue=queue,
                    resolver=resolver or SystemResolver(),
                    updates=updates,
                )
            finally:
                await updates.close()
