"""Secret box: encryption at rest for signing secrets, API-key parameter and header values.

Values are sealed with AES-256-GCM under the master key from ``WEBHOOKS_SECRET_KEY``
(urlsafe base64 of 32 random bytes; :func:`generate_key` makes one). A sealed value is
a text token::

    v1:<key-id>:<urlsafe-base64(nonce + ciphertext + tag)>

``key-id`` is the first 8 hex digits of the SHA-256 of the key, so after a rotation
the box knows which of its keys opened a token, and :meth:`SecretBox.needs_reencrypt`
finds tokens still sealed with an old key. Each token is bound to a *context* string
(for example ``"subscription:<id>:signing_secret"``) through the AEAD's associated
data: a token copied to another row or purpose fails to decrypt.

Errors are :class:`SecretBoxError` (or its subclass :class:`SecretKeyError` for an
unusable key); their messages never contain a key or a plaintext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import uuid
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.core.errors import WebhooksError

_VERSION = "v1"
_KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_ID_HEX = 8
_KEY_ID = re.compile(r"[0-9a-f]{8}")


class SecretBoxError(WebhooksError):
    """A value could not be sealed or opened. The message names no key or plaintext."""


class SecretKeyError(SecretBoxError):
    """A configured master key is not urlsafe base64 of 32 bytes."""


def generate_key() -> str:
    """A new random master key, ready for ``WEBHOOKS_SECRET_KEY``."""
    return base64.urlsafe_b64encode(os.urandom(_KEY_BYTES)).decode("ascii")


def key_id(key: str) -> str:
    """The public fingerprint of a master key, as written in its tokens."""
    return _key_id(_decode_key(key, "WEBHOOKS_SECRET_KEY"))


class SecretBox:
    """Seals with the primary key; opens with the primary key or any old one."""

    def __init__(self, primary_key: str, old_keys: Sequence[str] = ()) -> None:
        primary = _decode_key(primary_key, "WEBHOOKS_SECRET_KEY")
        self._primary_id = _key_id(primary)
        raw_by_id = {self._primary_id: primary}
        for position, old_key in enumerate(old_keys, start=1):
            label = f"WEBHOOKS_PREVIOUS_SECRET_KEYS entry #{position}"
            raw = _decode_key(old_key, label)
            identifier = _key_id(raw)
            if raw_by_id.setdefault(identifier, raw) != raw:
                # The same key listed twice is harmless; two different keys sharing a
                # fingerprint would make tokens ambiguous, so that is refused.
                raise SecretKeyError(
                    f"{label} has the same key id {identifier} as another configured key; "
                    "generate a new key"
                )
        self._ciphers = {identifier: AESGCM(raw) for identifier, raw in raw_by_id.items()}

    @property
    def primary_key_id(self) -> str:
        """The key id new tokens are sealed with."""
        return self._primary_id

    def encrypt(self, plaintext: str, *, context: str) -> str:
        """Seal ``plaintext`` for ``context`` with the primary key; returns a token."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self._primary_id].encrypt(
            nonce, plaintext.encode("utf-8"), _associated_data(self._primary_id, context)
        )
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{_VERSION}:{self._primary_id}:{body}"

    def decrypt(self, token: str, *, context: str) -> str:
        """Open a token sealed for ``context`` by this box's primary or an old key.

        Raises :class:`SecretBoxError` when the token is malformed, was sealed with a
        key this box does not hold, was sealed for another context, or was altered.
        """
        identifier, blob = _parse(token)
        cipher = self._ciphers.get(identifier)
        if cipher is None:
            raise SecretBoxError(
                f"this value was encrypted with key {identifier}, which is not configured; "
                "add that key to WEBHOOKS_PREVIOUS_SECRET_KEYS to read it"
            )
        nonce, sealed = blob[:_NONCE_BYTES], blob[_NONCE_BYTES:]
        try:
            plaintext = cipher.decrypt(nonce, sealed, _associated_data(identifier, context))
        except InvalidTag:
            raise SecretBoxError(
                f"could not decrypt a value for context {context!r}: it was altered or "
                "belongs to another context"
            ) from None
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretBoxError("a decrypted value is not valid UTF-8") from None

    def needs_reencrypt(self, token: str) -> bool:
        """True when ``token`` was not sealed with the primary key (e.g. after a rotation).

        Raises :class:`SecretBoxError` when the token is malformed.
        """
        identifier, _blob = _parse(token)
        return identifier != self._primary_id


def _decode_key(key: str, label: str) -> bytes:
    text = key.strip().rstrip("=")
    # Padding is restored rather than required: some secret stores strip it.
    raw = _strict_b64decode(text + "=" * (-len(text) % 4))
    if raw is None or len(raw) != _KEY_BYTES:
        if label == "WEBHOOKS_SECRET_KEY":
            message = "WEBHOOKS_SECRET_KEY must be urlsafe base64 of 32 bytes"
        else:
            message = f"{label} must be urlsafe base64 of 32 bytes, like WEBHOOKS_SECRET_KEY"
        raise SecretKeyError(f"{message} (generate one with `webhooks secret-key generate`)")
    return raw


def _strict_b64decode(text: str) -> bytes | None:
    # The standard decoders silently skip characters outside the alphabet; a key or a
    # token with stray characters is a mistake to report, not to half-read.
    try:
        return base64.b64decode(text.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def _key_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:_KEY_ID_HEX]


def _associated_data(identifier: str, context: str) -> bytes:
    # The version and key id are authenticated too, so a token's header cannot be
    # edited to steer decryption elsewhere without failing the tag check.
    return f"planomatic-webhooks/{_VERSION}/{identifier}\x00{context}".encode()


def _parse(token: str) -> tuple[str, bytes]:
    version, _, rest = token.partition(":")
    identifier, _, body = rest.partition(":")
    if version != _VERSION or not _KEY_ID.fullmatch(identifier) or not body:
        raise SecretBoxError(f"not a {_VERSION} encrypted value")
    blob = _strict_b64decode(body)
    if blob is None or len(blob) < _NONCE_BYTES + _TAG_BYTES:
        raise SecretBoxError(f"not a {_VERSION} encrypted value")
    return identifier, blob


def secret_context(subscription_id: uuid.UUID) -> str:
    """Associated data binding an encrypted signing secret to its subscription."""
    return f"subscription:{subscription_id}:signing-secret"


def param_context(subscription_id: uuid.UUID, name: str) -> str:
    """Associated data binding an encrypted API key parameter value to its place."""
    return f"subscription:{subscription_id}:param:{name}"


def header_context(subscription_id: uuid.UUID, name: str) -> str:
    """Associated data binding an encrypted custom header value to its place. Header
    names are case-insensitive, so the context holds the name in lower case."""
    return f"subscription:{subscription_id}:header:{name.lower()}"
