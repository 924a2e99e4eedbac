"""Rotating the master key re-encrypts every secret at rest; afterwards the old key can go."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from app.core.secret_box import SecretBoxError, generate_key
from app.delivery.attempts import build_target
from app.delivery.outgoing import Endpoint, outgoing_from_row
from app.domain.events import NewEvent
from app.domain.secret_rotation import reencrypt_secrets
from app.domain.subscriptions import NewSubscription
from app.store.services import Services, open_services
from tests.payloads import order_status_payload
from tests.service import Tenants, create_subscription_for, make_settings, publish_event_with

URL = "http://127.0.0.1:9/hook"


async def deliver_to(services: Services, company_id: str) -> uuid.UUID:
    """Publish an event; the id of its one delivery."""
    event = await publish_event_with(
        services, NewEvent(company_id, "ORDER_STATUS", order_status_payload(n=1))
    )
    [delivery] = await services.db.fetch_all(
        "deliveries_of_events", event_ids=[event.id], company_id=None
    )
    delivery_id: uuid.UUID = delivery["id"]
    return delivery_id


async def load_endpoint(services: Services, delivery_id: uuid.UUID) -> Endpoint:
    """The endpoint as the worker loads it to send an attempt of the delivery."""
    row = await services.db.fetch_one("load_attempt_contexts", ids=[delivery_id])
    assert row is not None
    return outgoing_from_row(row).endpoint


async def test_rotation_reencrypts_secrets_so_the_old_key_can_be_dropped(
    database_url: str, tmp_path: Path, tenants: Tenants
) -> None:
    old_key, new_key = generate_key(), generate_key()
    async with open_services(make_settings(database_url, tmp_path, secret_key=old_key)) as old:
        created, secret = await create_subscription_for(
            old,
            tenants.a,
            NewSubscription(
                "ORDER_STATUS",
                URL,
                "ops@example.com",
                api_key_params=[("token", "s3cr3t-value")],
                headers=[("Authorization", "Bearer h3ader-value")],
            ),
        )
        delivery_id = await deliver_to(old, tenants.a)

    both = make_settings(
        database_url, tmp_path, secret_key=new_key, previous_secret_keys=(old_key,)
    )
    async with open_services(both) as services:
        report = await reencrypt_secrets(services.db, services.secret_box)
        again = await reencrypt_secrets(services.db, services.secret_box)
    assert (report.reencrypted, again.reencrypted) == (1, 0)

    async with open_services(make_settings(database_url, tmp_path, secret_key=new_key)) as new:
        endpoint = await load_endpoint(new, delivery_id)
        target = build_target(new, endpoint, created.created_at)
    assert target.secrets == (secret,)
    assert target.url == URL + "?token=s3cr3t-value"
    assert target.headers == (("Authorization", "Bearer h3ader-value"),)


async def test_without_rotation_the_new_key_alone_cannot_decrypt(
    database_url: str, tmp_path: Path, tenants: Tenants
) -> None:
    old_key = generate_key()
    async with open_services(make_settings(database_url, tmp_path, secret_key=old_key)) as old:
        created, _ = await create_subscription_for(
            old, tenants.a, NewSubscription("ORDER_STATUS", URL, "ops@example.com")
        )
        delivery_id = await deliver_to(old, tenants.a)
    new_only = make_settings(database_url, tmp_path, secret_key=generate_key())
    async with open_services(new_only) as services:
        endpoint = await load_endpoint(services, delivery_id)
        with pytest.raises(SecretBoxError):
            build_target(services, endpoint, created.created_at)
