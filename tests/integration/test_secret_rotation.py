"""Rotating the master key re-encrypts every secret at rest; afterwards the old key can go."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from app.core.secret_box import SecretBoxError, generate_key
from app.delivery.attempts import build_target
from app.delivery.outgoing import Endpoint, endpoint_from_row
from app.domain.secret_rotation import reencrypt_secrets
from app.domain.subscriptions import NewSubscription
from app.store.services import Services, open_services
from tests.service import Tenants, create_subscription_for, make_settings

URL = "http://127.0.0.1:9/hook"


async def load_endpoint(services: Services, subscription_id: uuid.UUID) -> Endpoint:
    async with services.db.transaction() as tx:
        delivery_row = await tx.fetch_one("get_subscription_secrets", id=subscription_id)
    assert delivery_row is not None
    return endpoint_from_row({**delivery_row, "subscription_id": subscription_id})


async def test_rotation_reencrypts_secrets_so_the_old_key_can_be_dropped(
    database_url: str, tmp_path: Path, tenants: Tenants
) -> None:
    old_key, new_key = generate_key(), generate_key()
    async with open_services(make_settings(database_url, tmp_path, secret_key=old_key)) as old:
        created, secret = await create_subscription_for(
            old,
            tenants.a,
            NewSubscription(
                "ORDER_STATUS", URL, "ops@example.com", api_key_params=[("token", "s3cr3t-value")]
            ),
        )

    both = make_settings(
        database_url, tmp_path, secret_key=new_key, previous_secret_keys=(old_key,)
    )
    async with open_services(both) as services:
        report = await reencrypt_secrets(services.db, services.secret_box)
        again = await reencrypt_secrets(services.db, services.secret_box)
    assert (report.reencrypted, again.reencrypted) == (1, 0)

    async with open_services(make_settings(database_url, tmp_path, secret_key=new_key)) as new:
        endpoint = await load_endpoint(new, created.id)
        target = build_target(new, endpoint, created.created_at)
    assert target.secrets == (secret,)
    assert target.url == URL + "?token=s3cr3t-value"


async def test_without_rotation_the_new_key_alone_cannot_decrypt(
    database_url: str, tmp_path: Path, tenants: Tenants
) -> None:
    old_key = generate_key()
    async with open_services(make_settings(database_url, tmp_path, secret_key=old_key)) as old:
        created, _ = await create_subscription_for(
            old, tenants.a, NewSubscription("ORDER_STATUS", URL, "ops@example.com")
        )
    new_only = make_settings(database_url, tmp_path, secret_key=generate_key())
    async with open_services(new_only) as services:
        endpoint = await load_endpoint(services, created.id)
        with pytest.raises(SecretBoxError):
            build_target(services, endpoint, created.created_at)
