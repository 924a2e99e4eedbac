"""Masking: how secrets look wherever a person or a log can read them.

Callback URLs may carry an API key in their query string (the subscriber names the
parameter); emails, logs and attempt records show those URLs with the key's value
replaced by :data:`MASK`. Signing secrets and API keys shown back through the API
use :func:`mask_value`, which keeps only enough of a long value to recognise it.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "••••"

# Below this length the last four characters are too large a share of the secret to
# show, so short values are masked entirely.
_MIN_LENGTH_TO_HINT = 12


def mask_value(value: str) -> str:
    """Mask a secret, keeping its last four characters when it is long enough.

    ``"whsec_abcdefgh1234"`` becomes ``"••••1234"``; a value shorter than 12
    characters becomes ``"••••"`` so that most of a short secret is never revealed.
    """
    if len(value) >= _MIN_LENGTH_TO_HINT:
        return MASK + value[-4:]
    return MASK


def masked_url(url: str, secret_param_names: Iterable[str]) -> str:
    """The URL with the values of the named query parameters replaced by ``"••••"``.

    Other parameters, their order and their encoding are kept as they were, so the
    result still tells the reader which endpoint and which options were used. Names
    match case-insensitively (after percent-decoding): when in doubt, mask. A password
    in the URL's user-info part is masked too, for the same reason.
    """
    secret_names = {name.casefold() for name in secret_param_names}
    parts = urlsplit(url)
    query = parts.query
    if query and secret_names:
        query = "&".join(_mask_pair(pair, secret_names) for pair in query.split("&"))
    netloc = _mask_password(parts.netloc)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def with_masked_params(url: str, param_names: Iterable[str]) -> str:
    """The URL as deliveries call it, with each API key parameter shown as ``name=••••``.

    Stored callback URLs hold no API key parameters (they are appended at send time);
    this shows a reader which parameters go along without revealing any value.
    """
    names = list(param_names)
    shown = masked_url(url, [])
    if not names:
        return shown
    parts = urlsplit(shown)
    extra = "&".join(f"{name}={MASK}" for name in names)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def strip_query(url: str) -> str:
    """The URL without its query string and fragment (and without any user-info).

    For places that only need to say where a delivery went, such as a subject line or
    a metric label, where no parameter value belongs at all.
    """
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _mask_pair(pair: str, secret_names: set[str]) -> str:
    name, _separator, _value = pair.partition("=")
    if unquote_plus(name).casefold() in secret_names:
        return f"{name}={MASK}"
    return pair


def _mask_password(netloc: str) -> str:
    userinfo, at, host = netloc.rpartition("@")
    if not at:
        return netloc
    user, colon, _password = userinfo.partition(":")
    return f"{user}:{MASK}@{host}" if colon else netloc
