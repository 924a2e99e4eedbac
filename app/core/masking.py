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


class Redactor:
    """Replaces every occurrence of some secret values in a text with :data:`MASK`.

    For text that came from elsewhere (a publisher's payload, a receiver's error) and is
    about to be shown where the values must not be: occurrences that overlap or touch
    become one mask, so no piece of a value is left standing between two masks. Build it
    once for many texts; its repr names how many values it holds, never the values.

    Each value is searched with ``str.find`` and, after a match, extended by the value's
    smallest period (an overlapping occurrence is either a whole number of periods later,
    found by the extension, or starts after the match's first ``len - period`` characters,
    where the next search begins): time linear in the text for each value.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Iterable[str]) -> None:
        self._values = tuple(
            (value, _smallest_period(value)) for value in dict.fromkeys(values) if value
        )

    def __repr__(self) -> str:
        return f"Redactor({len(self._values)} values)"

    def __bool__(self) -> bool:
        return bool(self._values)

    def __call__(self, text: str) -> str:
        spans: list[tuple[int, int]] = []
        for value, period in self._values:
            spans += _occurrences(text, value, period)
        if not spans:
            return text
        spans.sort()
        pieces: list[str] = []
        done = 0
        start, end = spans[0]
        for next_start, next_end in spans[1:]:
            if next_start <= end:
                end = max(end, next_end)
                continue
            pieces += [text[done:start], MASK]
            done, start, end = end, next_start, next_end
        pieces += [text[done:start], MASK, text[end:]]
        return "".join(pieces)


def _occurrences(text: str, value: str, period: int) -> list[tuple[int, int]]:
    """Spans covering every occurrence of ``value`` in ``text`` (runs of overlapping
    occurrences a period apart as one span)."""
    length = len(value)
    tail = value[length - period :]
    spans = []
    start = text.find(value)
    while start != -1:
        end = start + length
        # The run goes on while the text repeats the value's last period; that is checked
        # a doubling block at a time, so a long run costs a few comparisons, not one per
        # period.
        block = tail
        while True:
            if text.startswith(block, end):
                end += len(block)
                block += block
            elif len(block) > period:
                block = block[: len(block) // 2]
            else:
                break
        spans.append((start, end))
        # The last occurrence of the run starts at end - length; another overlapping it
        # starts more than length - period characters after it.
        start = text.find(value, end - period + 1)
    return spans


def _smallest_period(value: str) -> int:
    """The smallest p > 0 with value[i] == value[i + p] for every i (KMP's failure
    function)."""
    border = [0] * len(value)
    length = 0
    for index in range(1, len(value)):
        while length and value[index] != value[length]:
            length = border[length - 1]
        if value[index] == value[length]:
            length += 1
        border[index] = length
    return len(value) - (border[-1] if value else 0)
