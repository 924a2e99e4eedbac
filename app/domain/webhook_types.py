"""Webhook types: the catalogue of events a company can subscribe to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.core.errors import UserError, UserErrorCode
from app.store.database import Database


@dataclass(frozen=True)
class WebhookType:
    key: str
    name: str
    description: str
    sample_payload: dict[str, Any]


async def list_webhook_types(db: Database) -> list[WebhookType]:
    rows = await db.fetch_all("list_webhook_types")
    return [
        WebhookType(
            key=row["key"],
            name=row["name"],
            description=row["description"],
            sample_payload=row["sample_payload"],
        )
        for row in rows
    ]


async def webhook_types_by_key(db: Database) -> dict[str, WebhookType]:
    return {webhook.key: webhook for webhook in await list_webhook_types(db)}


def unknown_webhook(key: str) -> UserError:
    """The user error for a ``webhook_key`` that is not in the catalogue."""
    return UserError(("webhook_key",), f"Unknown webhook {key!r}.", UserErrorCode.UNKNOWN_WEBHOOK)
