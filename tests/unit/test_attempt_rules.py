"""The pure rules of one attempt: when a job must not send, and where and how it sends."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import cast
from urllib.parse import parse_qsl, urlsplit

import pytest

from app.core.delivery_status import DeliveryStatus
from app.core.secret_box import (
    SecretBox,
    SecretBoxError,
    generate_key,
    header_context,
    param_context,
    secret_context,
)
from app.core.signing import webhook_headers
from app.delivery.attempts import _skip_reason, build_target, request_headers
from app.delivery.outgoing import Endpoint, OutgoingDelivery, SealedHeader, SealedParam
from app.store.services import Services

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
CURRENT = "whsec_" + "A" * 43 + "="
PREVIOUS = "whsec_" + "B" * 43 + "="


def delivery(
    status: DeliveryStatus = "RETRYING", cycle: int = 1, attempt_count: int = 1
) -> OutgoingDelivery:
    return OutgoingDelivery(
        id=uuid.uuid4(),
        webhook_id="msg_1",
        company_id="acme",
        event_id=uuid.uuid4(),
        webhook_key="ORDER_STATUS",
        subject="332818",
        status=status,
        cycle=cycle,
        attempt_count=attempt_count,
        max_attempts=10,
        body=b"{}",
        endpoint=Endpoint(
            subscription_id=uuid.uuid4(),
            callback_url="https://h.example/in",
            api_key_params=(),
            signing_secret="sealed",
            previous_signing_secret=None,
            previous_secret_expires_at=None,
            is_active=True,
            deleted_at=None,
        ),
    )


@pytest.mark.parametrize(
    ("state", "cycle", "attempt", "reason"),
    [
        (delivery("PENDING", 1, 0), 1, 1, None),
        (delivery("RETRYING", 1, 2), 1, 3, None),
        (delivery("RETRYING", 3, 0), 3, 1, None),
        (delivery("SUCCEEDED", 1, 1), 1, 2, "delivery is SUCCEEDED"),
        (delivery("FAILED", 1, 10), 1, 10, "delivery is FAILED"),
        (delivery("CANCELLED", 1, 1), 1, 2, "delivery is CANCELLED"),
        (delivery("PENDING", 2, 0), 1, 2, "delivery is in cycle 2, not 1"),
        (delivery("RETRYING", 1, 2), 1, 2, "already recorded"),
        (delivery("RETRYING", 1, 2), 1, 1, "already recorded"),
        (delivery("PENDING", 1, 0), 1, 3, "attempt 1 comes first"),
    ],
    ids=[
        "first attempt",
        "next attempt",
        "first attempt of a redelivery",
        "succeeded",
        "failed",
        "cancelled",
        "earlier cycle",
        "replayed",
        "replayed older",
        "out of order",
    ],
)
def test_an_attempt_is_made_only_when_it_is_the_next_one_of_an_open_delivery(
    state: OutgoingDelivery, cycle: int, attempt: int, reason: str | None
) -> None:
    assert _skip_reason(state, cycle, attempt) == reason


class Subscription:
    """Endpoints as ``load_attempt_contexts`` gives them, sealed with a real SecretBox."""

    def __init__(self) -> None:
        self.id = uuid.uuid4()
        self.box = SecretBox(generate_key())
        self.services = cast(Services, SimpleNamespace(secret_box=self.box))

    def endpoint(
        self,
        callback_url: str,
        params: Sequence[tuple[str, str]] = (),
        *,
        previous: str | None = None,
        previous_expires_at: datetime | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Endpoint:
        return Endpoint(
            subscription_id=self.id,
            callback_url=callback_url,
            api_key_params=tuple(
                SealedParam(name, self.box.encrypt(value, context=param_context(self.id, name)))
                for name, value in params
            ),
            signing_secret=self.box.encrypt(CURRENT, context=secret_context(self.id)),
            previous_signing_secret=(
                self.box.encrypt(previous, context=secret_context(self.id)) if previous else None
            ),
            previous_secret_expires_at=previous_expires_at,
            is_active=True,
            deleted_at=None,
            headers=tuple(
                SealedHeader(name, self.box.encrypt(value, context=header_context(self.id, name)))
                for name, value in headers
            ),
        )


def test_without_parameters_the_url_is_sent_as_given() -> None:
    subscription = Subscription()

    target = build_target(subscription.services, subscription.endpoint("https://h.example/in"), NOW)

    assert (target.url, target.masked_url) == ("https://h.example/in", "https://h.example/in")
    assert target.secrets == (CURRENT,)


def test_api_key_parameters_follow_the_urls_own_query_and_are_masked_for_display() -> None:
    subscription = Subscription()
    endpoint = subscription.endpoint(
        "https://h.example/in?tenant=acme&flag=",
        [("api_key", "s3cr3t value&more"), ("token", "t-0123456789")],
    )

    target = build_target(subscription.services, endpoint, NOW)

    assert parse_qsl(urlsplit(target.url).query, keep_blank_values=True) == [
        ("tenant", "acme"),
        ("flag", ""),
        ("api_key", "s3cr3t value&more"),
        ("token", "t-0123456789"),
    ]
    assert target.masked_url == "https://h.example/in?tenant=acme&flag=&api_key=••••&token=••••"
    assert "s3cr3t" not in target.masked_url and "t-0123456789" not in target.masked_url


def test_the_fragment_is_never_sent() -> None:
    subscription = Subscription()

    target = build_target(
        subscription.services,
        subscription.endpoint("https://h.example/in?a=1#part", [("k", "v")]),
        NOW,
    )

    assert target.url == "https://h.example/in?a=1&k=v"


@pytest.mark.parametrize(
    ("expires_at", "secrets"),
    [
        (NOW + timedelta(hours=23), (CURRENT, PREVIOUS)),
        (NOW + timedelta(seconds=1), (CURRENT, PREVIOUS)),
        (NOW, (CURRENT,)),
        (NOW - timedelta(seconds=1), (CURRENT,)),
        (None, (CURRENT,)),
    ],
    ids=["overlap", "last second", "expiring now", "expired", "no expiry"],
)
def test_the_previous_secret_signs_alongside_only_until_it_expires(
    expires_at: datetime | None, secrets: tuple[str, ...]
) -> None:
    subscription = Subscription()
    endpoint = subscription.endpoint(
        "https://h.example/in", previous=PREVIOUS, previous_expires_at=expires_at
    )

    assert build_target(subscription.services, endpoint, NOW).secrets == secrets


def test_custom_headers_are_opened_for_the_request() -> None:
    subscription = Subscription()
    endpoint = subscription.endpoint(
        "https://h.example/in", headers=[("Authorization", "Bearer t-1"), ("X-Tenant", "acme")]
    )

    target = build_target(subscription.services, endpoint, NOW)

    assert target.headers == (("Authorization", "Bearer t-1"), ("X-Tenant", "acme"))
    # The URL shown for the attempt says nothing of them.
    assert target.masked_url == "https://h.example/in"


def test_a_header_value_sealed_for_another_name_does_not_open() -> None:
    # Given a value sealed for "X-A" stored under the name "X-B" (a swapped row)
    subscription = Subscription()
    sealed = subscription.box.encrypt(
        "v-0123456789", context=header_context(subscription.id, "X-A")
    )
    endpoint = subscription.endpoint("https://h.example/in")
    swapped = Endpoint(**{**vars(endpoint), "headers": (SealedHeader("X-B", sealed),)})

    # Then it is refused, not sent under the wrong name
    with pytest.raises(SecretBoxError):
        build_target(subscription.services, swapped, NOW)


def test_our_headers_are_sent_over_the_subscriptions_whatever_their_case() -> None:
    ours = webhook_headers([CURRENT], "msg_1", 1_700_000_000, b"{}", attempt=2)
    custom = [
        ("Authorization", "Bearer t-1"),
        ("Webhook-Signature", "v1,forged"),  # refused by the checks; stored before them
        ("USER-AGENT", "evil/1"),
        ("Accept-Encoding", "gzip"),
        ("Content-Type", "text/plain"),
        ("X-Tenant", "acme"),
    ]

    headers = request_headers(ours, custom)

    assert headers == {"Authorization": "Bearer t-1", "X-Tenant": "acme", **ours}
