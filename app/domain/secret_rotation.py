"""Master key rotation: re-encrypt every secret at rest under the current primary key
(signing secrets, API key parameter values, header values).

Procedure (README, "Security"): generate a new key, start every process with
``WEBHOOKS_SECRET_KEY=<new>`` and ``WEBHOOKS_PREVIOUS_SECRET_KEYS=<old>`` (both decrypt),
run ``webhooks secret-key rotate``, then drop the old key from the environment.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from psycopg.types.json import Jsonb

from app.core.secret_box import SecretBox, header_context, param_context, secret_context
from app.store.database import Database

BATCH_SIZE = 200

# An API key parameter or a header as stored: {"name", "value" (sealed), "hint"}.
Entry = dict[str, Any]


@dataclass(frozen=True)
class RotationReport:
    subscriptions: int
    reencrypted: int


async def reencrypt_secrets(db: Database, box: SecretBox) -> RotationReport:
    """Re-encrypt, in batches of one transaction each, what an older key of ``box``
    encrypted: every company's secrets, for the system (``webhooks secret-key rotate``)."""
    seen = changed = 0
    after_id: uuid.UUID | None = None
    while True:
        async with db.transaction() as tx:
            rows = await tx.fetch_all(
                "subscriptions_with_secrets", after_id=after_id, limit=BATCH_SIZE
            )
            for row in rows:
                context = secret_context(row["id"])
                tokens = [row["signing_secret"], row["previous_signing_secret"]] + [
                    entry["value"] for entry in (*row["api_key_params"], *row["headers"])
                ]
                if not any(token and box.needs_reencrypt(token) for token in tokens):
                    continue
                previous = row["previous_signing_secret"]
                await tx.execute(
                    "store_reencrypted_secrets",
                    id=row["id"],
                    signing_secret=_again(box, row["signing_secret"], context),
                    previous_signing_secret=_again(box, previous, context) if previous else None,
                    api_key_params=_resealed(
                        box, row["api_key_params"], partial(param_context, row["id"])
                    ),
                    headers=_resealed(box, row["headers"], partial(header_context, row["id"])),
                )
                changed += 1
        seen += len(rows)
        if len(rows) < BATCH_SIZE:
            return RotationReport(subscriptions=seen, reencrypted=changed)
        after_id = rows[-1]["id"]


def _again(box: SecretBox, token: str, context: str) -> str:
    return box.encrypt(box.decrypt(token, context=context), context=context)


def _resealed(box: SecretBox, entries: list[Entry], context: Callable[[str], str]) -> Jsonb:
    """Stored API key parameters or headers, each value sealed anew for ``context(name)``."""
    return Jsonb(
        [
            {**entry, "value": _again(box, entry["value"], context(entry["name"]))}
            for entry in entries
        ]
    )
