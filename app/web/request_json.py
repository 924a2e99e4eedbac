"""JSON from clients (request bodies, websocket messages), parsed within bounds.

Python's ``json`` recurses once per nesting level and turns every integer literal into an
``int``: about 1,000 levels raise ``RecursionError`` deep inside the parser, a few hundred
survive parsing and then overflow whatever walks the value next, and a 4,301-digit
integer raises ``ValueError``. Each of these reached the client as a 500 or an unmasked
"maximum recursion depth exceeded". Here the depth is measured before parsing, in one
linear pass of C-level string operations, and number literals are checked as the parser
meets them; anything out of bounds, not UTF-8 or not JSON is a :class:`JsonRefused`.
"""

from __future__ import annotations

import json
import math
import re
from array import array
from itertools import accumulate

from app.core.errors import WebhooksError

MAX_DEPTH = 64
"""Nesting of arrays and objects, the request's own envelope included."""

MAX_NUMBER_CHARACTERS = 100
"""Characters of one number literal: far beyond any 64-bit integer or double."""

# A string literal, or an unterminated one up to the end of the text: every quote starts
# at most one match and matches never overlap, so the substitution is linear. Possessive
# quantifiers: nothing to backtrack into. (UTF-8 never puts a quote or a backslash inside
# a multibyte character, so this works on the bytes.)
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in _BRACKETS)
# Opening brackets count +1, closing ones -1 (as signed bytes).
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


class JsonRefused(WebhooksError, json.JSONDecodeError):
    """The text is not JSON the service accepts; ``reason`` says why, for the client.

    A ``JSONDecodeError``, so that Strawberry's own handling of unparsable JSON (HTTP
    400, websocket close 4400) applies to these too.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "", 0)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def nesting_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in ``data`` (brackets inside strings not counted)."""
    brackets = _STRING.sub(b"", data).translate(_STEPS, _NOT_BRACKETS)
    return max(0, max(accumulate(array("b", brackets)), default=0))


def loads(data: str | bytes) -> object:
    """Parse client JSON; :class:`JsonRefused` when it is out of bounds or not JSON."""
    if isinstance(data, str):
        text, data = data, data.encode("utf-8", "surrogatepass")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise JsonRefused("The body is not UTF-8 text.") from None
    if nesting_depth(data) > MAX_DEPTH:
        raise JsonRefused(f"JSON nests deeper than {MAX_DEPTH} levels.")
    try:
        return _DECODER.decode(text)
    except JsonRefused:
        raise
    except json.JSONDecodeError as error:
        raise JsonRefused(f"The body is not valid JSON: {error.msg}.") from None
    except RecursionError:  # only if the stack is already deep when parsing starts
        raise JsonRefused(f"JSON nests deeper than {MAX_DEPTH} levels.") from None


def _integer(literal: str) -> int:
    _check_length(literal)
    return int(literal)


def _float(literal: str) -> float:
    _check_length(literal)
    value = float(literal)
    if not math.isfinite(value):  # 1e400: JSON has no infinity
        raise JsonRefused("A number is out of range (JSON has no infinity).")
    return value


def _check_length(literal: str) -> None:
    if len(literal) > MAX_NUMBER_CHARACTERS:
        raise JsonRefused(f"A number has more than {MAX_NUMBER_CHARACTERS} characters.")


def _constant(name: str) -> object:
    # Python's json accepts NaN and Infinity; JSON does not.
    raise JsonRefused(f"{name} is not JSON.")


_DECODER = json.JSONDecoder(parse_int=_integer, parse_float=_float, parse_constant=_constant)
