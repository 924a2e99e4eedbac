"""Target policy: which callback URLs the service may send to (SSRF protection).

A subscriber chooses the URL, so without a policy anyone could make the service POST
to its own loopback interface, the cloud metadata endpoint or a private network. The
policy has three steps:

1. :func:`parse_callback_url` reads the URL the way a browser would, so that an IP
   address written in any spelling (``2130706433``, ``0x7f.1``, ``[::ffff:7f00:1]``)
   is recognised as one, and the host is normalised (lowercase, punycode, no trailing
   dot).
2. :func:`resolve_target` resolves the host once and checks every address with
   :func:`forbidden_reason`; one forbidden address refuses the whole target.
3. The transport connects to the address that was checked, never to the name again:
   a second lookup could answer differently (DNS rebinding).

``WEBHOOKS_ALLOWED_NETWORKS`` can open chosen networks (for example ``127.0.0.0/8`` for a
local receiver during development).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Literal, Protocol
from urllib.parse import urlsplit

import idna

from app.core.errors import WebhooksError

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
TargetErrorCode = Literal["INVALID", "FORBIDDEN_TARGET"]

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}

# Letters, digits, hyphens, plus underscores, which real DNS names do contain.
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_MAX_HOST_LENGTH = 253


class TargetError(WebhooksError):
    """A callback URL that is malformed (``INVALID``) or points somewhere the service
    must not send to (``FORBIDDEN_TARGET``). ``message`` is safe to show to users: it
    never contains the URL's query string, where API key values live."""

    def __init__(self, code: TargetErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: TargetErrorCode = code
        self.message = message


class ResolutionError(TargetError):
    """The host name did not resolve. Code ``INVALID``; message
    ``DNS lookup failed for <host>``. Often temporary, so callers that validate a URL
    at subscription time may choose to accept it anyway."""

    def __init__(self, host: str) -> None:
        super().__init__("INVALID", f"DNS lookup failed for {host}")
        self.host = host


@dataclass(frozen=True)
class CallbackUrl:
    """A parsed, normalised callback URL.

    ``host`` is lowercase ASCII (IDNs in punycode) without a trailing dot, or the
    canonical text of an IP address (without brackets) when the URL names one, in
    which case ``ip`` holds it. The query string is left out of ``repr`` because API
    key values live there.
    """

    scheme: Literal["http", "https"]
    host: str
    port: int
    path: str
    query: str = field(repr=False)
    ip: IPAddress | None = None

    @property
    def netloc(self) -> str:
        """``host[:port]`` as it appears in the URL and the Host header."""
        host = f"[{self.host}]" if isinstance(self.ip, IPv6Address) else self.host
        if self.port == DEFAULT_PORTS[self.scheme]:
            return host
        return f"{host}:{self.port}"

    @property
    def redacted(self) -> str:
        """The URL without its query string: the form to use in messages and logs."""
        return f"{self.scheme}://{self.netloc}{self.path}"

    @property
    def full(self) -> str:
        """The complete URL to request, query string included."""
        return self.redacted + (f"?{self.query}" if self.query else "")


@dataclass(frozen=True)
class ResolvedTarget:
    """A callback URL with the checked addresses of its host.

    ``address`` is the one to connect to; ``addresses`` is every address the single
    lookup returned (all of them passed the check).
    """

    url: CallbackUrl
    address: IPAddress
    addresses: tuple[IPAddress, ...]


class Resolver(Protocol):
    """Looks up the addresses of a host name (a seam so tests can script DNS)."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every A and AAAA address of ``host``; raises :class:`ResolutionError`."""
        ...


class SystemResolver:
    """Resolves through the operating system (``getaddrinfo``), IPv4 and IPv6."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``getaddrinfo`` returns for ``host``, in its order, deduplicated."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (OSError, UnicodeError):
            raise ResolutionError(host) from None
        addresses: list[IPAddress] = []
        for family, _type, _proto, _name, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = ipaddress.ip_address(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise ResolutionError(host)
        return addresses


def parse_callback_url(url: str, *, require_https: bool) -> CallbackUrl:
    """Parse and normalise a callback URL; raise :class:`TargetError` (``INVALID``).

    Accepts absolute ``http``/``https`` URLs (``https`` only when ``require_https``)
    with a host and no user name or password. Hosts that a browser would read as an
    IPv4 address (decimal, octal, hex and short forms) come back as that address.
    """
    if len(url) > MAX_URL_LENGTH:
        raise TargetError(
            "INVALID", f"The callback URL is longer than {MAX_URL_LENGTH} characters."
        )
    if any(char <= " " or char == "\x7f" for char in url):
        raise TargetError(
            "INVALID", "The callback URL must not contain spaces or control characters."
        )
    if "\\" in url:
        # Browsers read "\" as "/" in http URLs and Python does not: two parsers, two hosts.
        raise TargetError("INVALID", "The callback URL must not contain backslashes.")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise TargetError("INVALID", "The callback URL is not a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not url.lower().startswith(f"{scheme}://"):
        raise TargetError(
            "INVALID", "The callback URL must be an absolute http:// or https:// URL."
        )
    if require_https and scheme != "https":
        raise TargetError("INVALID", "The callback URL must use https://.")
    if "@" in parts.netloc:
        raise TargetError(
            "INVALID",
            "The callback URL must not contain a user name or password (user@host); "
            "send credentials as API key parameters instead.",
        )
    host_text, port_text = _split_netloc(parts.netloc)
    host, ip = _normalise_host(host_text)
    port = _port(port_text, DEFAULT_PORTS[scheme])
    return CallbackUrl(
        scheme="https" if scheme == "https" else "http",
        host=host,
        port=port,
        path=parts.path or "/",
        query=parts.query,
        ip=ip,
    )


def forbidden_reason(ip: IPAddress, allowed_networks: Sequence[Network]) -> str | None:
    """Why the service must not connect to ``ip``, or None when it may.

    The reason is a noun phrase such as ``"a loopback address"`` or ``"a private
    address (10.0.0.5) embedded in a NAT64 address"``, made to follow "is" or
    "resolves to". Addresses inside ``allowed_networks`` are always allowed, and so is
    the IPv4-mapped form of an allowed IPv4 address; its NAT64, 6to4 and Teredo forms
    are not (they are judged by the embedded address alone).
    """
    if any(ip in network for network in allowed_networks):
        return None
    if isinstance(ip, IPv4Address):
        return _ipv4_reason(ip)
    return _ipv6_reason(ip, allowed_networks)


async def resolve_target(
    url: CallbackUrl, resolver: Resolver, allowed_networks: Sequence[Network]
) -> ResolvedTarget:
    """Resolve ``url``'s host once and check every address it resolves to.

    Raises :class:`TargetError` ``FORBIDDEN_TARGET`` (message like ``blocked:
    example.test resolves to a private address (10.0.0.1)``) when any address is
    forbidden, and :class:`ResolutionError` when the lookup fails. The returned
    ``address`` is the one to connect to: connecting by name would look it up again.
    """
    if url.ip is not None:
        reason = forbidden_reason(url.ip, allowed_networks)
        if reason is not None:
            raise TargetError("FORBIDDEN_TARGET", f"blocked: {url.host} is {reason}")
        return ResolvedTarget(url=url, address=url.ip, addresses=(url.ip,))
    if url.host == "localhost" or url.host.endswith(".localhost"):
        # RFC 6761: these names are loopback by definition, whatever a DNS server says.
        addresses: list[IPAddress] = [IPv4Address("127.0.0.1")]
    else:
        addresses = list(await resolver.resolve(url.host, url.port))
    if not addresses:
        raise ResolutionError(url.host)
    for address in addresses:
        reason = forbidden_reason(address, allowed_networks)
        if reason is not None:
            raise TargetError(
                "FORBIDDEN_TARGET", f"blocked: {url.host} resolves to {reason} ({address})"
            )
    return ResolvedTarget(url=url, address=addresses[0], addresses=tuple(addresses))


def _split_netloc(netloc: str) -> tuple[str, str]:
    if not netloc:
        raise TargetError("INVALID", "The callback URL has no host.")
    if netloc.startswith("["):
        end = netloc.find("]")
        if end == -1:
            raise TargetError("INVALID", "The callback URL has an unclosed '[' in its host.")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            raise TargetError("INVALID", "The callback URL has text after its IPv6 address.")
        return host, rest[1:]
    host, _, port = netloc.partition(":")
    return host, port


def _port(text: str, default: int) -> int:
    if not text:
        return default
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise TargetError("INVALID", "The callback URL's port must be a number from 1 to 65535.")
    return int(text)


def _normalise_host(text: str) -> tuple[str, IPAddress | None]:
    if not text:
        raise TargetError("INVALID", "The callback URL has no host.")
    if "%" in text:
        # Percent-encoded hosts and IPv6 zone ids: browsers decode the former into
        # anything (even an IP address); neither belongs in a callback URL.
        raise TargetError("INVALID", "The callback URL's host must not contain '%'.")
    if text.startswith("["):
        try:
            ipv6 = IPv6Address(text[1:-1])
        except ValueError:
            raise TargetError("INVALID", "The callback URL has an invalid IPv6 address.") from None
        return ipv6.compressed, ipv6
    host = text.lower()
    if not host.isascii():
        # UTS 46 non-transitional mapping, as browsers and httpx use it; it also turns
        # full-width digits and dots into ASCII, so it must run before the IPv4 check.
        try:
            host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
        except UnicodeError:
            raise TargetError(
                "INVALID", "The callback URL's host is not a valid internationalised domain name."
            ) from None
    if host.endswith("."):
        host = host[:-1]
    labels = host.split(".")
    if _is_number(labels[-1]):
        ipv4 = _parse_ipv4(labels)
        return str(ipv4), ipv4
    if len(host) > _MAX_HOST_LENGTH or not all(_LABEL.fullmatch(label) for label in labels):
        raise TargetError("INVALID", "The callback URL's host is not a valid host name.")
    return host, None


def _is_number(label: str) -> bool:
    # The URL standard's "ends in a number" test: such hosts are IPv4 or invalid.
    if label[:2] in ("0x", "0X"):
        return all(char in "0123456789abcdefABCDEF" for char in label[2:])
    return label != "" and label.isascii() and label.isdigit()


def _parse_ipv4(labels: list[str]) -> IPv4Address:
    """Read an IPv4 host as the URL standard (and inet_aton) does: 1 to 4 parts, each
    decimal, octal (leading 0) or hex (0x); the last part fills the remaining bytes."""
    invalid = TargetError("INVALID", "The callback URL's host is not a valid IPv4 address.")
    if len(labels) > 4:
        raise invalid
    numbers = [_ipv4_number(label, invalid) for label in labels]
    *leading, last = numbers
    if any(number > 255 for number in leading) or last >= 256 ** (5 - len(numbers)):
        raise invalid
    value = last
    for index, number in enumerate(leading):
        value += number * 256 ** (3 - index)
    return IPv4Address(value)


def _ipv4_number(label: str, invalid: TargetError) -> int:
    digits, radix = label.lower(), 10
    if digits.startswith("0x"):
        digits, radix = digits[2:], 16
    elif len(digits) > 1 and digits.startswith("0"):
        digits, radix = digits[1:], 8
    if digits == "" and radix == 16:
        # "0x" alone is zero in the URL standard.
        return 0
    if digits == "" or any(char not in "0123456789abcdef"[:radix] for char in digits):
        raise invalid
    return int(digits, radix)


def _v4(text: str) -> IPv4Network:
    return IPv4Network(text)


def _v6(text: str) -> IPv6Network:
    return IPv6Network(text)


# Most specific first: the first matching network names the reason.
_IPV4_RULES: tuple[tuple[IPv4Network, str], ...] = (
    (_v4("0.0.0.0/32"), "the unspecified address"),
    (_v4("255.255.255.255/32"), "the broadcast address"),
    (_v4("0.0.0.0/8"), "a 'this network' address"),
    (_v4("10.0.0.0/8"), "a private address"),
    (_v4("172.16.0.0/12"), "a private address"),
    (_v4("192.168.0.0/16"), "a private address"),
    (_v4("100.64.0.0/10"), "a shared (carrier-grade NAT) address"),
    (_v4("127.0.0.0/8"), "a loopback address"),
    (_v4("169.254.0.0/16"), "a link-local address"),
    (_v4("192.0.0.0/24"), "a reserved (IETF protocol assignment) address"),
    (_v4("192.0.2.0/24"), "a documentation address"),
    (_v4("198.51.100.0/24"), "a documentation address"),
    (_v4("203.0.113.0/24"), "a documentation address"),
    (_v4("192.88.99.0/24"), "a reserved (6to4 relay) address"),
    (_v4("198.18.0.0/15"), "a benchmarking address"),
    (_v4("224.0.0.0/4"), "a multicast address"),
    (_v4("240.0.0.0/4"), "a reserved address"),
)

_IPV6_RULES: tuple[tuple[IPv6Network, str], ...] = (
    (_v6("::/128"), "the unspecified address"),
    (_v6("::1/128"), "a loopback address"),
    # Local-use NAT64 (RFC 8215) translates into whatever the operator's network holds.
    (_v6("64:ff9b:1::/48"), "a local-use NAT64 address"),
    (_v6("100::/64"), "a discard-only address"),
    (_v6("2001:db8::/32"), "a documentation address"),
    (_v6("3fff::/20"), "a documentation address"),
    (_v6("2001::/23"), "a reserved (IETF protocol assignment) address"),
    (_v6("5f00::/16"), "a reserved (segment routing) address"),
    (_v6("fc00::/7"), "a unique-local (private) address"),
    (_v6("fe80::/10"), "a link-local address"),
    (_v6("fec0::/10"), "a site-local address"),
    (_v6("ff00::/8"), "a multicast address"),
)

_GLOBAL_UNICAST = _v6("2000::/3")
_IPV4_MAPPED = _v6("::ffff:0:0/96")
_IPV4_COMPATIBLE = _v6("::/96")
_NAT64 = _v6("64:ff9b::/96")
_SIX_TO_FOUR = _v6("2002::/16")
_TEREDO = _v6("2001::/32")


def _ipv4_reason(ip: IPv4Address) -> str | None:
    for network, reason in _IPV4_RULES:
        if ip in network:
            return reason
    if not ip.is_global:
        # A safety net for ranges the table misses; the table names the common ones.
        return "a non-public address"
    return None


def _ipv6_reason(ip: IPv6Address, allowed_networks: Sequence[Network]) -> str | None:
    embedded = _embedded_ipv4(ip)
    if embedded:
        # These forms reach the IPv4 host they carry: judge them by it. An IPv4-mapped
        # address is that host's own socket address, so an allowed network opens it too;
        # NAT64, 6to4 and Teredo go through a translator or relay to reach it, and an
        # IPv4 allow-list opens none of them (an allowed IPv6 network holding the
        # address itself does, above).
        mapped = ip in _IPV4_MAPPED
        for address, form in embedded:
            reason = forbidden_reason(address, allowed_networks if mapped else ())
            if reason is not None:
                return f"{reason} ({address}) embedded in {form}"
        if ip in _IPV4_COMPATIBLE:
            return "a deprecated IPv4-compatible address"
        return None
    for network, reason in _IPV6_RULES:
        if ip in network:
            return reason
    if ip not in _GLOBAL_UNICAST:
        return "a reserved address"
    return None


def _embedded_ipv4(ip: IPv6Address) -> list[tuple[IPv4Address, str]]:
    value = int(ip)
    low32 = IPv4Address(value & 0xFFFFFFFF)
    if ip in _IPV4_MAPPED:
        return [(low32, "an IPv4-mapped address")]
    if ip in _NAT64:
        return [(low32, "a NAT64 address")]
    if ip in _SIX_TO_FOUR:
        return [(IPv4Address((value >> 80) & 0xFFFFFFFF), "a 6to4 address")]
    if ip in _TEREDO:
        # Teredo carries the server's address and the client's, the latter inverted.
        server = IPv4Address((value >> 64) & 0xFFFFFFFF)
        client = IPv4Address(~value & 0xFFFFFFFF)
        return [(server, "a Teredo address"), (client, "a Teredo address")]
    if ip in _IPV4_COMPATIBLE and value > 1:
        return [(low32, "an IPv4-compatible address")]
    return []
