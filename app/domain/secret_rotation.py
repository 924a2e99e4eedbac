"""Master key rotation: re-encrypt every secret at rest under the current primary key.

Procedure (README, "Security"): generate a new key, start every process with
``WEBHOOKS_SECRET_KEY=<new>`` and ``WEBHOOKS_PREVIOUS_SECRET_KEYS=<old>`` (both decrypt),
run ``webhooks secret-key rotate``, then drop the old key from the environment.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from psycopg.types.json import Jsonb

from app.core.secret_box import SecretBox, param_context, secret_context
from app.store.database import Database

BATCH_SIZE = 200


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
                    param["value"] for param in row["api_key_params"]
                ]
                if not any(token and box.needs_reencrypt(token) for token in tokens):
                    continue

                def again(token: str, where: str) -> str:
                    return box.encrypt(box.decrypt(token, context=where), context=where)

                params = [
                    {
                        **param,
                        "value": again(param["value"], param_context(row["id"], param["name"])),
                    }
                    for param in row["api_key_params"]
                ]
                previous = row["previous_signing_secret"]
                await tx.execute(
                    "store_reencrypted_secrets",
                    id=row["id"],
                    signing_secret=again(row["signing_secret"], context),
                    previous_signing_secret=again(previous, context) if previous else None,
                    api_key_params=Jsonb(params),
                )
                changed += 1
        seen += len(rows)
        if len(rows) < BATCH_SIZE:
            return RotationReport(subscriptions=seen, reencrypted=changed)
        after_id = rows[-1]["id"]
