"""What every ``webhooks`` command shares: its errors, its output, its database.

A command raises :class:`CommandError` when it cannot do what was asked (exit code 1)
and :class:`UsageError` when what it was given is wrong: a missing or malformed file, a
refused definition (exit code 2, as for a bad setting). Either prints its message alone,
never a traceback.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from app.core import event_loop
from app.core.errors import WebhooksError
from app.core.settings import Settings, SettingsError
from app.store.services import Services, open_services

T = TypeVar("T")


class CommandError(WebhooksError):
    """A command could not do what was asked; the message says why."""


class UsageError(CommandError):
    """A command was given something it refuses; the message says what and where."""


def emit(args: argparse.Namespace, data: dict[str, Any], human: str) -> None:
    """``data`` as one JSON object on stdout with ``--json``, else ``human``."""
    if getattr(args, "json", False):
        print(json.dumps(data))
    else:
        print(human)


def require_database(settings: Settings) -> str:
    if settings.database_url is None:
        raise SettingsError(
            "WEBHOOKS_DATABASE_URL (or DATABASE_URL) is not set, and no `webhooks dev` runs "
            f"with the data directory {Path(settings.data_dir).absolute()} (WEBHOOKS_DATA_DIR) "
            "to lend its database"
        )
    return settings.database_url


def with_services(settings: Settings, work: Callable[[Services], Awaitable[T]]) -> T:
    """Run ``work`` with the services of ``settings``' database, then close them."""
    require_database(settings)

    async def run() -> T:
        async with open_services(settings) as services:
            return await work(services)

    return event_loop.run(run())
