from __future__ import annotations

import base64

import pytest

from app.core.secret_box import SecretBox, SecretBoxError, SecretKeyError, generate_key, key_id

CONTEXT = "subscription:sub_1:signing_secret"
PLAINTEXT = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_encrypt_then_decrypt_returns_the_plaintext() -> None:
    box = SecretBox(generate_key())

    token = box.encrypt(PLAINTEXT, context=CONTEXT)

    assert box.decrypt(token, context=CONTEXT) == PLAINTEXT
    assert PLAINTEXT not in token


def test_token_format_names_version_and_key_id() -> None:
    key = generate_key()
    box = SecretBox(key)

    version, identifier, body = box.encrypt("x", context=CONTEXT).split(":")

    assert version == "v1"
    assert identifier == key_id(key) == box.primary_key_id
    assert len(identifier) == 8
    assert len(base64.urlsafe_b64decode(body)) == 12 + 1 + 16  # nonce + ciphertext + tag


def test_each_encryption_uses_a_fresh_nonce() -> None:
    box = SecretBox(generate_key())

    assert box.encrypt(PLAINTEXT, context=CONTEXT) != box.encrypt(PLAINTEXT, context=CONTEXT)


def test_decrypt_with_another_context_fails_without_revealing_anything() -> None:
    box = SecretBox(generate_key())
    token = box.encrypt(PLAINTEXT, context=CONTEXT)

    with pytest.raises(SecretBoxError) as caught:
        box.decrypt(token, context="subscription:sub_2:signing_secret")

    assert PLAINTEXT not in str(caught.value)


@pytest.mark.parametrize("position", [5, 20, -3])
def test_a_tampered_token_fails(position: int) -> None:
    box = SecretBox(generate_key())
    prefix, body = box.encrypt(PLAINTEXT, context=CONTEXT).rsplit(":", 1)
    blob = bytearray(base64.urlsafe_b64decode(body))
    blob[position] ^= 0x01
    tampered = f"{prefix}:{base64.urlsafe_b64encode(bytes(blob)).decode()}"

    with pytest.raises(SecretBoxError):
        box.decrypt(tampered, context=CONTEXT)


def test_a_token_with_an_edited_key_id_fails() -> None:
    old, new = generate_key(), generate_key()
    box = SecretBox(new, [old])
    body = box.encrypt(PLAINTEXT, context=CONTEXT).rsplit(":", 1)[1]

    with pytest.raises(SecretBoxError):
        box.decrypt(f"v1:{key_id(old)}:{body}", context=CONTEXT)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "plain text",
        "v2:0123abcd:AAAA",
        "v1:XYZ:AAAA",
        "v1:0123abcd:",
        "v1:0123abcd:!!!!",
        "v1:0123abcd:AAAA",
    ],
)
def test_malformed_tokens_are_rejected(token: str) -> None:
    box = SecretBox(generate_key())

    with pytest.raises(SecretBoxError):
        box.decrypt(token, context=CONTEXT)


def test_rotation_old_key_still_decrypts_and_asks_for_reencryption() -> None:
    old_key, new_key = generate_key(), generate_key()
    token = SecretBox(old_key).encrypt(PLAINTEXT, context=CONTEXT)
    rotated = SecretBox(new_key, old_keys=[old_key])

    assert rotated.decrypt(token, context=CONTEXT) == PLAINTEXT
    assert rotated.needs_reencrypt(token)

    fresh = rotated.encrypt(rotated.decrypt(token, context=CONTEXT), context=CONTEXT)
    assert not rotated.needs_reencrypt(fresh)
    assert fresh.split(":")[1] == key_id(new_key)


def test_unknown_key_id_is_a_clear_error() -> None:
    token = SecretBox(generate_key()).encrypt(PLAINTEXT, context=CONTEXT)
    box = SecretBox(generate_key())

    with pytest.raises(SecretBoxError, match="not configured") as caught:
        box.decrypt(token, context=CONTEXT)

    assert token.split(":")[1] in str(caught.value)


def test_the_same_old_key_listed_twice_is_accepted() -> None:
    key = generate_key()
    box = SecretBox(key, [key, key])

    assert box.decrypt(box.encrypt("x", context=CONTEXT), context=CONTEXT) == "x"


def test_a_key_without_padding_is_accepted() -> None:
    key = generate_key()
    token = SecretBox(key).encrypt("x", context=CONTEXT)

    assert SecretBox(key.rstrip("=")).decrypt(token, context=CONTEXT) == "x"


@pytest.mark.parametrize(
    "bad_key",
    [
        "",
        "not base64 at all!",
        base64.urlsafe_b64encode(b"short").decode(),
        base64.urlsafe_b64encode(bytes(33)).decode(),
    ],
)
def test_a_bad_master_key_says_what_is_expected(bad_key: str) -> None:
    with pytest.raises(
        SecretKeyError, match="WEBHOOKS_SECRET_KEY must be urlsafe base64 of 32 bytes"
    ) as caught:
        SecretBox(bad_key)

    if bad_key:
        assert bad_key not in str(caught.value)


def test_a_bad_old_key_is_named_by_position() -> None:
    with pytest.raises(SecretKeyError, match="WEBHOOKS_PREVIOUS_SECRET_KEYS entry #2"):
        SecretBox(generate_key(), [generate_key(), "nope"])


def test_generate_key_gives_32_random_bytes() -> None:
    first, second = generate_key(), generate_key()

    assert len(base64.urlsafe_b64decode(first)) == 32
    assert first != second
