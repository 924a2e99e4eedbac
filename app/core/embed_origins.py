"""Embed origins: who may frame a company's portal, and the page's Content-Security-Policy.

Each origin goes into ``frame-ancestors`` as it is written, so it must be exactly
``scheme://host[:port]``: https, or http for localhost/127.0.0.1 (or anything in
development), lower-case, no path, no wildcard, nothing that could end the directive
(quotes, semicolons, commas, spaces). No origin listed: ``frame-ancestors 'none'``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from app.core.errors import InvalidInput, UserError, UserErrorCode

MAX_ORIGINS = 20
MAX_ORIGIN_LENGTH = 253 + len("https://") + len(":65535")
# A DNS name (labels of letters, digits and hyphens) or an IPv4 address, then a port.
_ORIGIN = re.compile(
    r"(?P<scheme>https?)://"
    r"(?P<host>[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
_LOCAL_HOSTS = ("localhost", "127.0.0.1")

POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'"
)


def content_security_policy(origins: Sequence[str]) -> str:
    """The portal's CSP, framed only by ``origins`` (already checked)."""
    ancestors = " ".join(origins) if origins else "'none'"
    return f"{POLICY}; frame-ancestors {ancestors}"


def checked_origins(origins: Sequence[str], *, allow_http: bool) -> tuple[str, ...]:
    """The origins as stored, or InvalidInput with an error at each bad one's index
    (``allow_http``: development, where any http origin is accepted)."""
    if len(origins) > MAX_ORIGINS:
        raise InvalidInput(
            [
                UserError(
                    ("origins",),
                    f"At most {MAX_ORIGINS} embed origins; got {len(origins)}.",
                    UserErrorCode.INVALID,
                )
            ]
        )
    errors = [
        UserError(("origins", index), problem, UserErrorCode.INVALID)
        for index, origin in enumerate(origins)
        if (problem := origin_problem(origin, allow_http=allow_http)) is not None
    ]
    if errors:
        raise InvalidInput(errors)
    # Duplicates say nothing more; order is kept as written.
    return tuple(dict.fromkeys(origins))


def origin_problem(origin: str, *, allow_http: bool) -> str | None:
    """Why ``origin`` cannot be an embed origin, or None."""
    if len(origin) > MAX_ORIGIN_LENGTH:
        return "Too long to be an origin."
    match = _ORIGIN.fullmatch(origin)
    if match is None:
        return (
            "Must be exactly scheme://host[:port] in lower case, like "
            "https://app.example.com: no path, wildcard, quote, semicolon or space."
        )
    port = match.group("port")
    if port is not None and not 1 <= int(port) <= 65535:
        return "The port must be 1 to 65535."
    host = match.group("host")
    if _numeric(host) and not _ipv4(host):
        return "The host must be a name or an IPv4 address."
    if match.group("scheme") == "http" and not allow_http and host not in _LOCAL_HOSTS:
        return "Must be https:// (http only for localhost and 127.0.0.1)."
    return None


def _numeric(host: str) -> bool:
    return host.replace(".", "").isdigit()


def _ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True
