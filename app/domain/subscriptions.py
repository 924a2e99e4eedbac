"""Subscriptions: a company's callback URLs for a webhook, with their signing secrets.

Signing secrets, API key parameter values and custom header values are encrypted at
rest and never returned: the secret is shown once (on create and rotate), parameter and
header values only as a hint.
Every function is confined to the viewer's company; another company's id behaves as a
missing one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from psycopg.errors import UniqueViolation
from psycopg.types.json import Jsonb

from app.core.delivery_ordering import DeliveryOrdering
from app.core.errors import Field, InvalidInput, UserError, UserErrorCode, not_found
from app.core.ids import new_id, try_uuid
from app.core.masking import mask_value
from app.core.pagination import Page, PageRequest, make_page
from app.core.secret_box import SecretBox, header_context, param_context, secret_context
from app.core.settings import Settings
from app.core.signing import generate_secret
from app.core.target_policy import (
    Network,
    Resolver,
    TargetError,
    parse_callback_url,
    resolve_target,
)
from app.core.validation import (
    MAX_DESCRIPTION,
    check_api_key_params,
    check_delivery_rate,
    check_email,
    check_headers,
    check_text,
    check_visible,
)
from app.core.viewer import Viewer
from app.domain.subscription_filters import stored_filter
from app.domain.webhook_types import unknown_webhook, webhook_types_by_key
from app.store.database import Database, Row
from app.store.queue import (
    cancel_open_deliveries,
    release_held_deliveries,
    repace_waiting_attempts,
)

# A description and a filter can be cleared (set to None), so keeping one needs a marker.
UNCHANGED: Any = object()


@dataclass(frozen=True)
class ApiKeyParam:
    name: str
    value_hint: str


@dataclass(frozen=True)
class CustomHeader:
    """A header sent with every request; its value shown only as a hint."""

    name: str
    value_hint: str


@dataclass(frozen=True)
class Subscription:
    id: uuid.UUID
    company_id: str
    webhook_key: str
    callback_url: str
    notification_email: str
    api_key_params: tuple[ApiKeyParam, ...]
    headers: tuple[CustomHeader, ...]
    is_active: bool
    description: str | None
    created_at: datetime
    updated_at: datetime
    # Its content filter as written (app/core/payload_filter.py); None: every event.
    filter: dict[str, Any] | None = None
    # Its delivery rate (app/delivery/pacing.py); None: no limit.
    max_deliveries_per_second: int | None = None
    ordering: DeliveryOrdering = DeliveryOrdering.NONE


@dataclass(frozen=True)
class SubscriptionSummary:
    """What a viewer who does not read configuration (a PUBLISHER key) may know of a
    subscription: which one it is and whether it is on, not where it sends or to whom
    it reports."""

    id: uuid.UUID
    company_id: str
    webhook_key: str
    is_active: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class NewSubscription:
    webhook_key: str
    callback_url: str
    notification_email: str
    api_key_params: Sequence[tuple[str, str]] = ()
    is_active: bool = True
    description: str | None = None
    headers: Sequence[tuple[str, str]] = ()
    filter: Any = None
    max_deliveries_per_second: int | None = None
    ordering: DeliveryOrdering = DeliveryOrdering.NONE


@dataclass(frozen=True)
class SubscriptionChanges:
    """Fields to change; None keeps a field, except ``description``, ``filter`` and
    ``max_deliveries_per_second`` (UNCHANGED keeps them, None clears them). A list given
    (parameters, headers) replaces the whole list. A new ``ordering`` orders the
    deliveries made from then on; switched off, it sends the HELD ones at once."""

    callback_url: str | None = None
    notification_email: str | None = None
    api_key_params: Sequence[tuple[str, str]] | None = None
    is_active: bool | None = None
    description: str | None = UNCHANGED
    headers: Sequence[tuple[str, str]] | None = None
    filter: Any = UNCHANGED
    max_deliveries_per_second: Any = UNCHANGED
    ordering: DeliveryOrdering | None = None


def subscription_from_row(row: Row) -> Subscription:
    return Subscription(
        id=row["id"],
        company_id=row["company_id"],
        webhook_key=row["webhook_key"],
        callback_url=row["callback_url"],
        notification_email=row["notification_email"],
        api_key_params=tuple(
            ApiKeyParam(name=param["name"], value_hint=param["hint"])
            for param in row["api_key_params"]
        ),
        headers=tuple(
            CustomHeader(name=header["name"], value_hint=header["hint"])
            for header in row["headers"]
        ),
        is_active=row["is_active"],
        description=row["description"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        filter=row["filter"],
        max_deliveries_per_second=row["max_deliveries_per_second"],
        ordering=DeliveryOrdering(row["ordering"]),
    )


def subscription_summary_from_row(row: Row) -> SubscriptionSummary:
    return SubscriptionSummary(
        id=row["id"],
        company_id=row["company_id"],
        webhook_key=row["webhook_key"],
        is_active=row["is_active"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def subscriptions_by_id(
    db: Database, viewer: Viewer, ids: list[uuid.UUID]
) -> dict[uuid.UUID, Subscription | SubscriptionSummary]:
    """Subscriptions by id whatever their company or state, for deliveries the viewer
    already found (deleted ones stay readable through their past deliveries); only
    their summary for a viewer who does not read configuration."""
    if viewer.reads_configuration:
        rows = await db.fetch_all("get_subscriptions_any_company", ids=ids)
        return {row["id"]: subscription_from_row(row) for row in rows}
    rows = await db.fetch_all("get_subscription_summaries", ids=ids)
    return {row["id"]: subscription_summary_from_row(row) for row in rows}


@dataclass(frozen=True)
class CallbackChecks:
    """How a callback URL is checked: https only (production), and not aiming inside our
    network, as ``resolver`` resolves it (outside ``allowed_networks``)."""

    resolver: Resolver
    require_https: bool
    allowed_networks: tuple[Network, ...]

    @classmethod
    def of(cls, settings: Settings, resolver: Resolver) -> CallbackChecks:
        """The checks the settings ask for, resolving with the process's ``resolver``."""
        return cls(resolver, settings.is_production, settings.allowed_networks)


async def check_callback_url(checks: CallbackChecks, field: Field, url: str) -> list[UserError]:
    """The URL must be absolute http(s) (https in production) and not aim inside our network.

    A host that does not resolve yet is accepted: the receiver may be set up later, and
    every attempt checks the addresses again anyway.
    """
    if not url.strip():
        return [UserError(field, "A callback URL is required.", UserErrorCode.REQUIRED)]
    if hidden := check_visible(field, url, "callback URL"):
        return hidden
    try:
        target = parse_callback_url(url, require_https=checks.require_https)
    except TargetError as error:
        return [UserError(field, error.message, UserErrorCode(error.code))]
    try:
        await resolve_target(target, checks.resolver, checks.allowed_networks)
    except TargetError as error:
        if error.code == "FORBIDDEN_TARGET":
            return [UserError(field, error.message, UserErrorCode.FORBIDDEN_TARGET)]
    return []


def _duplicate_url() -> InvalidInput:
    """A company subscribes a webhook to one URL once (a unique index says so)."""
    message = "This company already has a subscription of this webhook to this URL."
    return InvalidInput([UserError(("callback_url",), message, UserErrorCode.DUPLICATE)])


def _seal(
    box: SecretBox, context: Callable[[str], str], entries: Sequence[tuple[str, str]]
) -> Jsonb:
    """Named values (API key parameters, headers) as stored: each value sealed for
    ``context(name)``, with its hint."""
    return Jsonb(
        [
            {
                "name": name,
                "value": box.encrypt(value, context=context(name)),
                "hint": mask_value(value),
            }
            for name, value in entries
        ]
    )


def _encrypt_params(
    box: SecretBox, subscription_id: uuid.UUID, params: Sequence[tuple[str, str]]
) -> Jsonb:
    return _seal(box, partial(param_context, subscription_id), params)


def _encrypt_headers(
    box: SecretBox, subscription_id: uuid.UUID, headers: Sequence[tuple[str, str]]
) -> Jsonb:
    return _seal(box, partial(header_context, subscription_id), headers)


async def create_subscription(
    db: Database, box: SecretBox, checks: CallbackChecks, viewer: Viewer, new: NewSubscription
) -> tuple[Subscription, str]:
    """Create a subscription; returns it with its signing secret (shown only this once)."""
    errors: list[UserError] = []
    webhooks = await webhook_types_by_key(db)
    if new.webhook_key not in webhooks:
        errors.append(unknown_webhook(new.webhook_key))
    errors += await check_callback_url(checks, ("callback_url",), new.callback_url)
    errors += check_email(("notification_email",), new.notification_email)
    errors += check_api_key_params(("api_key_params",), new.api_key_params, new.callback_url)
    errors += check_text(("description",), new.description, MAX_DESCRIPTION, "description")
    errors += check_headers(("headers",), new.headers)
    errors += check_delivery_rate(("max_deliveries_per_second",), new.max_deliveries_per_second)
    content_filter, filter_errors = stored_filter(("filter",), new.filter)
    errors += filter_errors
    if errors:
        raise InvalidInput(errors)

    subscription_id = new_id()
    secret = generate_secret()
    row = await db.fetch_one(
        "insert_subscription",
        id=subscription_id,
        company_id=viewer.own_company,
        webhook_key=new.webhook_key,
        callback_url=new.callback_url.strip(),
        notification_email=new.notification_email.strip(),
        api_key_params=_encrypt_params(box, subscription_id, new.api_key_params),
        headers=_encrypt_headers(box, subscription_id, new.headers),
        max_deliveries_per_second=new.max_deliveries_per_second,
        is_active=new.is_active,
        description=new.description,
        signing_secret=box.encrypt(secret, context=secret_context(subscription_id)),
        filter=content_filter.document,
        filter_path=content_filter.path,
        ordering=new.ordering,
    )
    if row is None:
        raise _duplicate_url()
    return subscription_from_row(row), secret


async def update_subscription(
    db: Database,
    box: SecretBox,
    checks: CallbackChecks,
    viewer: Viewer,
    subscription_id: str,
    changes: SubscriptionChanges,
) -> Subscription:
    """Change a subscription; deactivating it cancels its pending deliveries (held ones
    too), switching its ordering off sends the held ones."""
    company_id = viewer.own_company
    key = try_uuid(subscription_id)
    if key is None:
        raise not_found(("subscription_id",), "subscription")
    errors: list[UserError] = []
    if changes.callback_url is not None:
        errors += await check_callback_url(checks, ("callback_url",), changes.callback_url)
    if changes.notification_email is not None:
        errors += check_email(("notification_email",), changes.notification_email)
    if changes.description is not UNCHANGED:
        errors += check_text(("description",), changes.description, MAX_DESCRIPTION, "description")
    if changes.headers is not None:
        errors += check_headers(("headers",), changes.headers)
    rate = changes.max_deliveries_per_second
    set_rate = rate is not UNCHANGED
    if set_rate:
        errors += check_delivery_rate(("max_deliveries_per_second",), rate)
    set_filter = changes.filter is not UNCHANGED
    content_filter, filter_errors = stored_filter(
        ("filter",), changes.filter if set_filter else None
    )
    errors += filter_errors
    async with db.transaction() as tx:
        current = await tx.fetch_one("get_subscription_for_update", id=key, company_id=company_id)
        if current is None:
            raise not_found(("subscription_id",), "subscription")
        if changes.api_key_params is not None:
            url = changes.callback_url or current["callback_url"]
            errors += check_api_key_params(("api_key_params",), changes.api_key_params, url)
        if errors:
            raise InvalidInput(errors)
        params = (
            None
            if changes.api_key_params is None
            else _encrypt_params(box, key, changes.api_key_params)
        )
        headers = None if changes.headers is None else _encrypt_headers(box, key, changes.headers)
        try:
            row = await tx.fetch_one(
                "update_subscription",
                id=key,
                company_id=company_id,
                callback_url=changes.callback_url.strip() if changes.callback_url else None,
                notification_email=(
                    changes.notification_email.strip() if changes.notification_email else None
                ),
                api_key_params=params,
                headers=headers,
                set_rate=set_rate,
                max_deliveries_per_second=rate if set_rate else None,
                is_active=changes.is_active,
                set_description=changes.description is not UNCHANGED,
                description=None if changes.description is UNCHANGED else changes.description,
                set_filter=set_filter,
                filter=content_filter.document,
                filter_path=content_filter.path,
                ordering=changes.ordering,
            )
        except UniqueViolation:
            raise _duplicate_url() from None
        if row is None:
            raise RuntimeError(f"subscription {key} vanished while it was locked for update")
        rate_changed = row["max_deliveries_per_second"] != current["max_deliveries_per_second"]
        if rate_changed:
            # The slots reserved at the old rate go with it, whether or not an attempt
            # reserves before the next change: a rate set back to what the slots were
            # spaced for would otherwise queue attempts behind slots long since used.
            await tx.execute("restart_pacing", subscription_id=key)
        if not row["is_active"]:
            await cancel_open_deliveries(tx, key)
        else:
            if current["ordering"] != row["ordering"] == DeliveryOrdering.NONE:
                await release_held_deliveries(tx, key)
            if rate_changed:
                # Attempts waiting for slots spaced at the old rate (or none) take new ones.
                await repace_waiting_attempts(tx, key)
    return subscription_from_row(row)


async def delete_subscription(db: Database, viewer: Viewer, subscription_id: str) -> str:
    """Delete a subscription: nothing more is sent; its past deliveries stay queryable."""
    company_id = viewer.own_company
    key = try_uuid(subscription_id)
    if key is None:
        raise not_found(("subscription_id",), "subscription")
    async with db.transaction() as tx:
        row = await tx.fetch_one("delete_subscription", id=key, company_id=company_id)
        if row is None:
            raise not_found(("subscription_id",), "subscription")
        await cancel_open_deliveries(tx, key)
    return str(key)


async def get_subscription(
    db: Database, viewer: Viewer, subscription_id: str
) -> Subscription | None:
    company_id = viewer.own_company
    key = try_uuid(subscription_id)
    if key is None:
        return None
    row = await db.fetch_one("get_subscription", id=key, company_id=company_id)
    return subscription_from_row(row) if row else None


async def list_subscriptions(
    db: Database,
    viewer: Viewer,
    request: PageRequest,
    *,
    webhook_key: str | None = None,
    is_active: bool | None = None,
) -> Page[Subscription]:
    rows = await db.fetch_all(
        "list_subscriptions",
        company_id=viewer.own_company,
        webhook_key=webhook_key,
        is_active=is_active,
        **request.query_arguments(),
    )
    return make_page(rows, request, subscription_from_row)


SECRET_OVERLAP = timedelta(hours=24)


async def rotate_secret(
    db: Database, box: SecretBox, viewer: Viewer, subscription_id: str
) -> tuple[Subscription, str]:
    """A new signing secret (returned once); the old one keeps signing for 24 hours."""
    company_id = viewer.own_company
    key = try_uuid(subscription_id)
    if key is None:
        raise not_found(("subscription_id",), "subscription")
    secret = generate_secret()
    row = await db.fetch_one(
        "rotate_signing_secret",
        id=key,
        company_id=company_id,
        signing_secret=box.encrypt(secret, context=secret_context(key)),
        previous_expires_at=datetime.now(UTC) + SECRET_OVERLAP,
    )
    if row is None:
        raise not_found(("subscription_id",), "subscription")
    return subscription_from_row(row), secret


async def require_active_subscription(
    db: Database, viewer: Viewer, subscription_id: str, *, to: str
) -> Row:
    """The viewer's company's live, active subscription, or the userError saying why not.

    ``to`` completes "activate it to ...", e.g. "send a test event".
    """
    company_id = viewer.own_company
    key = try_uuid(subscription_id)
    row = await db.fetch_one("get_subscription", id=key, company_id=company_id) if key else None
    if row is None:
        raise not_found(("subscription_id",), "subscription")
    if not row["is_active"]:
        message = f"The subscription is inactive; activate it to {to}."
        raise InvalidInput([UserError(("subscription_id",), message, UserErrorCode.INVALID)])
    return row
