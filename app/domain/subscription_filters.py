"""Content filters of subscriptions: checked and compiled when saved, and tested on a
payload before (or after) saving, confined to the viewer's company.

A test's ``matched`` is PostgreSQL's answer, through the very function the fan-out
calls (``webhooks_filter_matches``) and, for a saved subscription, on its stored
compiled filter; its reasons come from the Python evaluator, which
``tests/integration/test_filter_agreement.py`` proves gives the same answers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from app.core.errors import Field, InvalidInput, UserError, UserErrorCode, not_found
from app.core.filter_jsonpath import filter_jsonpath
from app.core.filter_verdict import Verdict, judge
from app.core.ids import try_uuid
from app.core.payload_filter import parse_filter
from app.core.validation import check_payload
from app.core.viewer import Viewer
from app.domain.webhook_types import unknown_webhook, webhook_types_by_key
from app.store.database import Database

log = logging.getLogger(__name__)

DEFAULT_WEBHOOK = "ORDER_STATUS"


@dataclass(frozen=True)
class StoredFilter:
    """A filter as a subscription row keeps it: the document and its compiled predicate
    (both None: no filter, every event)."""

    document: Jsonb | None
    path: str | None


def stored_filter(field: Field, document: Any) -> tuple[StoredFilter, list[UserError]]:
    """``document`` checked and compiled for saving (None: no filter), or its errors."""
    if document is None:
        return StoredFilter(None, None), []
    parsed, errors = parse_filter(field, document)
    if parsed is None:
        return StoredFilter(None, None), errors
    return StoredFilter(Jsonb(document), filter_jsonpath(parsed)), []


@dataclass(frozen=True)
class FilterTrial:
    """What to test: a filter, or the saved one of ``subscription_id``; on ``payload``
    (an event's data), or on the webhook's sample payload when None."""

    filter: Any = None
    subscription_id: str | None = None
    payload: Any = None
    webhook_key: str | None = None


async def try_filter(
    db: Database, viewer: Viewer, max_payload_bytes: int, trial: FilterTrial
) -> Verdict:
    """Whether the trial's payload passes its filter, and why (or why not)."""
    company_id = viewer.own_company
    if (trial.filter is None) == (trial.subscription_id is None):
        message = "Give either a filter or the subscriptionId of a saved one."
        code = UserErrorCode.REQUIRED if trial.filter is None else UserErrorCode.INVALID
        raise InvalidInput([UserError(("filter",), message, code)])
    webhook_key = trial.webhook_key
    document = trial.filter
    stored_path: str | None = None
    if trial.subscription_id is not None:
        key = try_uuid(trial.subscription_id)
        row = (
            await db.fetch_one("subscription_filter", id=key, company_id=company_id)
            if key
            else None
        )
        if row is None:
            raise not_found(("subscription_id",), "subscription")
        if webhook_key not in (None, row["webhook_key"]):
            message = f"The subscription is to {row['webhook_key']}; leave the webhook out."
            raise InvalidInput([UserError(("webhook_key",), message, UserErrorCode.INVALID)])
        webhook_key, document, stored_path = row["webhook_key"], row["filter"], row["filter_path"]
    payload = await _payload(db, trial.payload, webhook_key or DEFAULT_WEBHOOK, max_payload_bytes)
    if document is None:
        return Verdict(True, ("The subscription has no filter: it receives every event.",), ())
    parsed, errors = parse_filter(("filter",), document)
    if parsed is None:
        raise InvalidInput(errors)
    verdict = judge(parsed, payload)
    row = await db.fetch_one(
        "filter_matches",
        payload=Jsonb(payload),
        filter_path=stored_path or filter_jsonpath(parsed),
    )
    matched = bool(row and row["matched"])
    if matched != verdict.matched:
        # A bug in one of the two evaluators; the fan-out's answer is the one that counts.
        log.error("The filter explanation disagrees with PostgreSQL's match (%s)", matched)
        return Verdict(matched, verdict.reasons, verdict.mismatches)
    return verdict


async def _payload(
    db: Database, payload: Any, webhook_key: str, max_payload_bytes: int
) -> dict[str, Any]:
    webhooks = await webhook_types_by_key(db)
    if webhook_key not in webhooks:
        raise InvalidInput([unknown_webhook(webhook_key)])
    if payload is None:
        return webhooks[webhook_key].sample_payload
    _, errors = check_payload(("payload",), payload, max_payload_bytes)
    if errors:
        raise InvalidInput(errors)
    checked: dict[str, Any] = payload
    return checked
