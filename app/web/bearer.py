"""Bearer credentials: the API key a caller presents, parsed in this one place.

An HTTP request presents it in its ``Authorization`` header; a websocket in the
``connection_init`` payload, under the same name (browsers cannot set headers on a
websocket). Both come through :func:`presented_key`, so a value means the same key
whichever way it arrives:

- the scheme is ``Bearer`` in any case (RFC 7235: auth-schemes are case-insensitive), then
  one or more spaces, then the key; surrounding spaces do not count;
- any other scheme (``Basic ...``), a bare key, or ``Bearer`` with nothing after it
  presents no key: the call is unauthenticated, as without the header;
- two values are refused (:class:`AmbiguousCredentials`), even two equal ones.

The rate limit and authentication once read the header each: the rate limit took what
followed the first space whatever the scheme, and the first of several headers, while
authentication wanted ``Bearer``. So ``Basic <base64>`` was a key to one and none to the
other, and two headers could be two callers. The stricter reading is the right one: a
credential of another scheme is not an API key, and picking one of two values would let
each reader pick its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from starlette.datastructures import Headers

from app.core.errors import WebhooksError


class AmbiguousCredentials(WebhooksError, ValueError):
    """More than one ``Authorization`` value came with one request or connection_init."""


def header_key(headers: Headers) -> str | None:
    """The key an HTTP request presents in its ``Authorization`` header(s)."""
    return presented_key(headers.getlist("authorization"))


def connection_key(params: Mapping[str, object] | None) -> str | None:
    """The key a websocket presents in its ``connection_init`` payload.

    The name counts in any case: header names are case-insensitive, and GraphQL clients
    copy them as written (``Authorization``). A value that is not text presents no key.
    """
    return presented_key(
        [
            value if isinstance(value, str) else ""
            for name, value in (params or {}).items()
            if isinstance(name, str) and name.lower() == "authorization"
        ]
    )


def presented_key(authorization: Sequence[str]) -> str | None:
    """The key in the ``Authorization`` values of one request or connection, else None;
    :class:`AmbiguousCredentials` for more than one value."""
    if len(authorization) > 1:
        raise AmbiguousCredentials("send one Authorization value, not several")
    if not authorization:
        return None
    scheme, _, key = authorization[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()
