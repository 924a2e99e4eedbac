"""The event body: the bytes every attempt of every delivery of an event POSTs.

Built once, when the event is recorded (by ``publishEvent`` or by the service's own
operator events), and stored with it.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as the envelope's ``createdAt``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def delivery_body(
    event_id: uuid.UUID,
    webhook_key: str,
    company_id: str,
    subject: str | None,
    created_at: datetime,
    payload_json: bytes,
    *,
    is_test: bool = False,
) -> bytes:
    """The bytes every attempt of every delivery of this event POSTs.

    A test event's body also says ``"test": true`` (signed with the rest, unlike a
    header would be); other events' bodies have no ``test`` field.
    """
    fields: dict[str, Any] = {
        "id": str(event_id),
        "webhook": webhook_key,
        "companyId": company_id,
        "subject": subject,
        "createdAt": timestamp(created_at),
    }
    if is_test:
        fields["test"] = True
    envelope = json.dumps(
        {**fields, "data": None},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    # Splice the already-encoded payload in place of the null, so it is encoded once.
    if not envelope.endswith(b'"data":null}'):
        raise RuntimeError("the event envelope does not end with its null data field")
    return envelope[: -len(b"null}")] + payload_json + b"}"
