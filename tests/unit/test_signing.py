"""Signatures checked with the off-the-shelf ``standardwebhooks`` library, as partners do."""

from __future__ import annotations

import base64
import time
from importlib import metadata

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.core import signing
from app.core.masking import MASK
from app.core.signing import (
    SentHeaders,
    generate_secret,
    shown_headers,
    sign,
    signature_header,
    webhook_headers,
)
from app.delivery.attempts import request_headers

BODY = b'{"id": "evt_1", "webhook": "ORDER_STATUS", "data": {"status": "done"}}'

# The example from the Standard Webhooks reference implementation's documentation.
KNOWN_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KNOWN_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
KNOWN_TIMESTAMP = 1614265330
KNOWN_BODY = b'{"test": 2432232314}'
KNOWN_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers_now(secrets: list[str], body: bytes = BODY, attempt: int = 1) -> dict[str, str]:
    return webhook_headers(secrets, "dlv_123", int(time.time()), body, attempt=attempt)


def test_generated_secret_is_whsec_base64_of_32_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()

    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    assert first != second


def test_sign_matches_the_standard_example() -> None:
    assert sign(KNOWN_SECRET, KNOWN_ID, KNOWN_TIMESTAMP, KNOWN_BODY) == KNOWN_SIGNATURE


def test_headers_verify_with_the_standardwebhooks_library() -> None:
    secret = generate_secret()

    headers = headers_now([secret])

    assert Webhook(secret).verify(BODY, headers) == {
        "id": "evt_1",
        "webhook": "ORDER_STATUS",
        "data": {"status": "done"},
    }


def test_rotation_header_verifies_with_either_secret() -> None:
    old, new, stranger = generate_secret(), generate_secret(), generate_secret()

    headers = headers_now([new, old])

    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(BODY, headers)


@pytest.mark.parametrize(
    ("field", "tampered"),
    [
        ("body", b'{"id": "evt_1", "webhook": "ORDER_STATUS", "data": {"status": "void"}}'),
        ("webhook-id", "dlv_456"),
        ("webhook-timestamp", "shift"),
    ],
)
def test_tampering_breaks_the_signature(field: str, tampered: bytes | str) -> None:
    old, new = generate_secret(), generate_secret()
    headers = headers_now([new, old])
    body = BODY
    if isinstance(tampered, bytes):
        body = tampered
    elif tampered == "shift":
        headers[field] = str(int(headers[field]) - 1)
    else:
        headers[field] = tampered

    for secret in (old, new):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(body, headers)


def test_webhook_headers_are_the_contract_headers() -> None:
    secret = generate_secret()

    headers = webhook_headers([secret], "dlv_123", 1_700_000_000, BODY, attempt=3)

    assert headers == {
        "content-type": "application/json",
        "user-agent": f"PlanOmatic-Webhooks/{metadata.version('planomatic-webhooks')}",
        "webhook-id": "dlv_123",
        "webhook-timestamp": "1700000000",
        "webhook-signature": sign(secret, "dlv_123", 1_700_000_000, BODY),
        "webhook-attempt": "3",
    }


def test_attempt_number_is_not_signed() -> None:
    secret = generate_secret()

    first = webhook_headers([secret], "dlv_123", 1_700_000_000, BODY, attempt=1)
    tenth = webhook_headers([secret], "dlv_123", 1_700_000_000, BODY, attempt=10)

    assert first["webhook-signature"] == tenth["webhook-signature"]


def test_an_ordered_delivery_also_carries_its_sequence_number_unsigned() -> None:
    secret = generate_secret()

    plain = webhook_headers([secret], "dlv_123", 1_700_000_000, BODY, attempt=1)
    ordered = webhook_headers([secret], "dlv_123", 1_700_000_000, BODY, attempt=1, sequence=7)

    # the same headers, the same signature, and one more header
    assert "webhook-sequence" not in plain
    assert ordered == {**plain, "webhook-sequence": "7"}


def test_user_agent_falls_back_to_version_0(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    signing.user_agent.cache_clear()
    try:
        assert signing.user_agent() == "PlanOmatic-Webhooks/0"
    finally:
        monkeypatch.undo()
        signing.user_agent.cache_clear()


MALFORMED_SECRETS = [
    pytest.param("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with", id="no-prefix"),
    pytest.param("whsec_", "must be 24 to 64 bytes", id="empty-key"),
    pytest.param("whsec_not*base64!!secretvalue", "not valid base64", id="not-base64"),
    pytest.param("whsec_c2hvcnQ=", "must be 24 to 64 bytes, got 5", id="too-short"),
    pytest.param("whsec_" + base64.b64encode(b"k" * 65).decode(), "got 65", id="too-long"),
]


@pytest.mark.parametrize(("secret", "reason"), MALFORMED_SECRETS)
def test_malformed_secret_is_refused_without_echoing_it(secret: str, reason: str) -> None:
    with pytest.raises(ValueError, match="malformed webhook secret") as caught:
        sign(secret, "dlv_1", 1, BODY)

    message = str(caught.value)
    assert reason in message
    key_part = secret.removeprefix("whsec_")
    assert not key_part or key_part not in message
    # A chained exception would carry the secret into tracebacks and logs.
    error = caught.value
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def test_message_id_with_a_dot_is_refused() -> None:
    with pytest.raises(ValueError, match=r"must not contain '\.'"):
        sign(generate_secret(), "dlv.1", 1, BODY)


def test_signature_header_needs_a_list_of_secrets() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        signature_header([], "dlv_1", 1, BODY)
    with pytest.raises(TypeError, match="not a single string"):
        signature_header(generate_secret(), "dlv_1", 1, BODY)


def test_an_attempts_record_shows_its_headers_as_sent_custom_values_masked() -> None:
    # Given the headers of an attempt with two custom headers, one shadowing one of ours
    ours = webhook_headers(
        [generate_secret()], "msg_1", 1_700_000_000, b"{}", attempt=3, sequence=7
    )
    sent = request_headers(ours, [("X-Token", "t0ps3cret"), ("Webhook-Id", "x"), ("X-B", "b")])

    # When its record is kept, then shown
    record = SentHeaders.of(ours, sent)
    shown = shown_headers(record, "msg_1", attempt=3, sequence=7)

    # Then the headers are those sent, in order, but custom values masked
    assert record.custom_names == ("X-Token", "X-B")
    assert shown == [
        (name, MASK if name.startswith("X-") else value) for name, value in sent.items()
    ]
    assert "t0ps3cret" not in repr(record) + repr(shown)
    # and without a sequence there is no webhook-sequence
    unordered = shown_headers(record, "msg_1", attempt=3, sequence=None)
    assert "webhook-sequence" not in dict(unordered)
