"""Webhook types for tests, added the way an operator adds them (``put_webhook_type``).

await add_webhook_type(services, "MEDIA_READY")   # accepts any object payload
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.domain.webhook_types import WebhookType, WebhookTypeDefinition, put_webhook_type
from app.store.services import Services

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "catalogue"
ORDER_STATUS_SCHEMA_FILE = EXAMPLES / "order_status.schema.json"
ORDER_STATUS_SAMPLE_FILE = EXAMPLES / "order_status.sample.json"
# ORDER_STATUS's name and description as migration 0013 wrote them (the README's put
# command repeats them, so that putting the example files changes nothing).
ORDER_STATUS_NAME = "Order Status"
ORDER_STATUS_DESCRIPTION = (
    "Sent whenever an order changes status, from placement through scheduling, the shoot, "
    "editing and delivery of the media. The subject is the order id (order_id, as a string)."
)
# A schema any JSON object matches: for types whose payloads a test does not care about.
ANY_OBJECT = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}


def order_status_schema() -> dict[str, Any]:
    """The ORDER_STATUS schema as the operator's file has it (and migration 0013)."""
    schema: dict[str, Any] = json.loads(ORDER_STATUS_SCHEMA_FILE.read_text(encoding="utf-8"))
    return schema


def order_status_sample() -> dict[str, Any]:
    sample: dict[str, Any] = json.loads(ORDER_STATUS_SAMPLE_FILE.read_text(encoding="utf-8"))
    return sample


async def add_webhook_type(
    services: Services,
    key: str,
    *,
    schema: dict[str, Any] | None = None,
    sample: dict[str, Any] | None = None,
    subject_pointer: str | None = None,
    status_pointer: str | None = None,
) -> WebhookType:
    """Put a webhook type (by default one that accepts any object); returns it."""
    result = await put_webhook_type(
        services.db,
        WebhookTypeDefinition(
            key=key,
            name=key.replace("_", " ").title(),
            description=f"The {key} webhook of a test.",
            payload_schema=ANY_OBJECT if schema is None else schema,
            sample_payload={} if sample is None else sample,
            subject_pointer=subject_pointer,
            status_pointer=status_pointer,
        ),
    )
    return result.webhook_type
