"""Operator events' pure rules: the no-loop rule, the error kinds, the payloads (each
matching its type's schema) and the idempotency keys derived from their causes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
import pytest

from app.core.operator_events import (
    OPERATOR_WEBHOOKS,
    DeactivationReason,
    DeliveryFacts,
    ErrorKind,
    SubscriptionFacts,
    delivery_failed,
    error_kind,
    may_report_on,
    subscription_deactivated,
    subscription_recovered,
)
from tests.catalogue import EXAMPLES

NOW = datetime(2026, 11, 30, 17, 1, 12, 530_999, tzinfo=UTC)
SUBSCRIPTION = SubscriptionFacts(
    id=uuid.UUID("5f0c2b9e-8d3a-4c51-9a7e-1b2c3d4e5f60"),
    company_id="acme",
    webhook_key="ORDER_STATUS",
    callback_url="https://hooks.acme.example/planomatic?tenant=7",
)
DELIVERY = DeliveryFacts(
    id=uuid.UUID("0b6f7c1e-2a3d-4e5f-8a9b-c0d1e2f3a4b5"),
    webhook_id="msg_2f1e",
    event_id=uuid.UUID("9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"),
    subject="332818",
    cycle=2,
    attempt_count=10,
    last_response_status=None,
)


def schema_of(webhook: str) -> Any:
    return json.loads((EXAMPLES / f"{webhook.lower()}.schema.json").read_text(encoding="utf-8"))


def test_operator_events_are_never_reported_on_other_types_are() -> None:
    assert may_report_on("ORDER_STATUS")
    assert may_report_on("MEDIA_READY")
    assert not any(may_report_on(key) for key in OPERATOR_WEBHOOKS)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ("HTTP 503", ErrorKind.HTTP_STATUS),
        ("redirect (301) not followed", ErrorKind.REDIRECT),
        ("timed out after 15 s", ErrorKind.TIMEOUT),
        ("timed out after 15 s reading the response body (status 200)", ErrorKind.TIMEOUT),
        ("connection refused", ErrorKind.CONNECTION),
        ("connection reset (status 200)", ErrorKind.CONNECTION),
        ("connection failed (network is unreachable)", ErrorKind.CONNECTION),
        ("TLS error: certificate verify failed: self-signed certificate", ErrorKind.TLS),
        ("DNS lookup failed for hooks.example", ErrorKind.DNS),
        ("blocked: hooks.example resolves to a private address (10.0.0.1)", ErrorKind.BLOCKED),
        ("invalid HTTP response (bad status line)", ErrorKind.INVALID_RESPONSE),
        ("unexpected error (KeyError)", ErrorKind.OTHER),
        (None, ErrorKind.OTHER),
    ],
)
def test_an_attempt_error_has_its_kind(error: str | None, kind: ErrorKind) -> None:
    assert error_kind(error) is kind


def test_a_given_up_delivery_is_of_kind_given_up_whatever_its_last_error() -> None:
    assert error_kind("HTTP 500", given_up=True) is ErrorKind.GIVEN_UP


def test_the_schemas_list_exactly_the_kinds_and_reasons_the_code_knows() -> None:
    kinds = schema_of("DELIVERY_FAILED")["properties"]["error_kind"]["oneOf"]
    assert [branch["const"] for branch in kinds] == [kind.value for kind in ErrorKind]
    reasons = schema_of("SUBSCRIPTION_DEACTIVATED")["properties"]["reason"]["oneOf"]
    assert [branch["const"] for branch in reasons] == [r.value for r in DeactivationReason]


def test_delivery_failed_says_what_failed_and_matches_its_schema() -> None:
    event = delivery_failed(
        SUBSCRIPTION,
        DELIVERY,
        kind=ErrorKind.TIMEOUT,
        last_attempt_at=NOW - timedelta(seconds=15),
        failed_at=NOW,
    )
    jsonschema_rs.validator_for(schema_of(event.webhook_key)).validate(event.payload)
    assert (event.webhook_key, event.company_id, event.subject) == (
        "DELIVERY_FAILED",
        "acme",
        str(SUBSCRIPTION.id),
    )
    assert event.payload == {
        "subscription_id": str(SUBSCRIPTION.id),
        "webhook": "ORDER_STATUS",
        "callback_url": "https://hooks.acme.example/planomatic?tenant=7",
        "delivery_id": str(DELIVERY.id),
        "webhook_id": "msg_2f1e",
        "event_id": str(DELIVERY.event_id),
        "subject": "332818",
        "cycle": 2,
        "attempt_count": 10,
        "last_response_status": None,
        "error_kind": "TIMEOUT",
        "last_attempt_at": "2026-11-30T17:00:57.530Z",
        "failed_at": "2026-11-30T17:01:12.530Z",
    }


def test_delivery_failed_is_keyed_by_its_delivery_and_cycle() -> None:
    def key(delivery: DeliveryFacts, failed_at: datetime = NOW) -> str:
        return delivery_failed(
            SUBSCRIPTION, delivery, kind=ErrorKind.OTHER, last_attempt_at=NOW, failed_at=failed_at
        ).idempotency_key

    # A replayed job records at another moment: the same key
    assert key(DELIVERY) == key(DELIVERY, NOW + timedelta(seconds=5))
    # A redelivery's cycle fails on its own: another key
    assert key(DELIVERY) != key(DeliveryFacts(**{**DELIVERY.__dict__, "cycle": 3}))


@pytest.mark.parametrize("reason", list(DeactivationReason))
def test_subscription_deactivated_matches_its_schema_and_is_keyed_by_its_moment(
    reason: DeactivationReason,
) -> None:
    gone = DeliveryFacts(**{**DELIVERY.__dict__, "last_response_status": 410})

    def deactivated(at: datetime) -> Any:
        return subscription_deactivated(
            SUBSCRIPTION,
            reason=reason,
            deactivated_at=at,
            failing_since=None if reason is DeactivationReason.GONE else NOW - timedelta(days=5),
            gone=gone if reason is DeactivationReason.GONE else None,
        )

    event = deactivated(NOW)
    jsonschema_rs.validator_for(schema_of(event.webhook_key)).validate(event.payload)
    assert event.payload["reason"] == reason.value
    assert event.payload["last_response_status"] == (
        410 if reason is DeactivationReason.GONE else None
    )
    assert event.idempotency_key == deactivated(NOW).idempotency_key
    # Reactivated and deactivated again: another event
    assert event.idempotency_key != deactivated(NOW + timedelta(hours=1)).idempotency_key


def test_subscription_recovered_matches_its_schema_and_is_keyed_by_its_failing_period() -> None:
    def recovered(failing_since: datetime, delivery: DeliveryFacts = DELIVERY) -> Any:
        return subscription_recovered(
            SUBSCRIPTION, delivery, failing_since=failing_since, recovered_at=NOW
        )

    event = recovered(NOW - timedelta(hours=1))
    jsonschema_rs.validator_for(schema_of(event.webhook_key)).validate(event.payload)
    assert event.payload["failing_since"] == "2026-11-30T16:01:12.530Z"
    assert event.payload["recovered_at"] == "2026-11-30T17:01:12.530Z"
    # Two successes ending one failing period: one event (the second finds the key used)
    other = DeliveryFacts(**{**DELIVERY.__dict__, "id": uuid.uuid4()})
    assert event.idempotency_key == recovered(NOW - timedelta(hours=1), other).idempotency_key
    assert event.idempotency_key != recovered(NOW - timedelta(minutes=5)).idempotency_key


@pytest.mark.parametrize("webhook", sorted(OPERATOR_WEBHOOKS))
def test_each_sample_matches_its_schema_and_names_no_secret_field(webhook: str) -> None:
    sample = json.loads((EXAMPLES / f"{webhook.lower()}.sample.json").read_text(encoding="utf-8"))
    jsonschema_rs.validator_for(schema_of(webhook)).validate(sample)
    fields = set(schema_of(webhook)["properties"])
    assert not {name for name in fields if any(w in name for w in ("secret", "header", "body"))}
