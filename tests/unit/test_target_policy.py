"""The SSRF policy against bypass attempts: every way to spell an internal address."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

import pytest

from app.core.target_policy import (
    _IPV4_RULES,
    _IPV6_RULES,
    IPAddress,
    Network,
    ResolutionError,
    SystemResolver,
    TargetError,
    forbidden_reason,
    parse_callback_url,
    resolve_target,
)

PUBLIC = "93.184.215.14"
PUBLIC6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
LOOPBACK_OPEN: tuple[Network, ...] = (ip_network("127.0.0.0/8"),)


class FakeResolver:
    """Answers from a table, one answer list per call (the last one repeats)."""

    def __init__(self, answers: Mapping[str, Sequence[Sequence[str]]]) -> None:
        self._answers = answers
        self.calls: list[tuple[str, int]] = []

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append((host, port))
        if host not in self._answers:
            raise ResolutionError(host)
        sequence = self._answers[host]
        answer = sequence[min(len(self.calls_for(host)), len(sequence)) - 1]
        return [ip_address(text) for text in answer]

    def calls_for(self, host: str) -> list[tuple[str, int]]:
        return [call for call in self.calls if call[0] == host]


@dataclass(frozen=True)
class Case:
    url: str
    expected: str  # "INVALID", "FORBIDDEN_TARGET" or "OK"
    message: str = ""  # must appear in the error message
    dns: Mapping[str, Sequence[Sequence[str]]] = field(default_factory=dict)
    allowed: tuple[Network, ...] = ()
    require_https: bool = False


def blocked(url: str, message: str, **dns: list[str]) -> Case:
    return Case(url, "FORBIDDEN_TARGET", message, {host: [ips] for host, ips in dns.items()})


def invalid(url: str, message: str) -> Case:
    return Case(url, "INVALID", message)


BYPASS_ATTEMPTS = {
    # IPv4 in the spellings browsers and inet_aton accept
    "decimal": blocked("http://2130706433/", "blocked: 127.0.0.1 is a loopback address"),
    "octal": blocked("http://0177.0.0.1/", "blocked: 127.0.0.1 is a loopback address"),
    "hex-dotted": blocked("http://0x7f.0.0.1/", "blocked: 127.0.0.1 is a loopback address"),
    "hex-whole": blocked("http://0x7F000001/", "blocked: 127.0.0.1 is a loopback"),
    "short-form": blocked("http://127.1/", "blocked: 127.0.0.1 is a loopback address"),
    "short-octal-hex": blocked("http://0177.0x1/", "blocked: 127.0.0.1 is a loopback"),
    "trailing-dot-ip": blocked("http://127.0.0.1./", "blocked: 127.0.0.1 is a loopback"),
    "fullwidth-digits": blocked(
        "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "blocked: 127.0.0.1 is a loopback"
    ),
    "ideographic-dots": blocked(
        "http://127\u30020\u30020\u30021/", "blocked: 127.0.0.1 is a loopback"
    ),
    "with-port": blocked("http://127.0.0.1:8080/x", "127.0.0.1 is a loopback"),
    "unspecified": blocked("http://0.0.0.0/", "is the unspecified address"),
    "zero": blocked("http://0/", "blocked: 0.0.0.0 is the unspecified address"),
    "this-network": blocked("http://0.1.2.3/", "is a 'this network' address"),
    "metadata": blocked("http://169.254.169.254/latest/meta-data/", "is a link-local address"),
    "metadata-decimal": blocked("http://2852039166/", "169.254.169.254 is a link-local"),
    "private-10": blocked("http://10.0.0.1/", "blocked: 10.0.0.1 is a private address"),
    "private-172": blocked("http://172.16.0.1/", "is a private address"),
    "private-192": blocked("http://192.168.1.1/", "is a private address"),
    "cgnat": blocked("http://100.64.0.1/", "is a shared (carrier-grade NAT) address"),
    "benchmarking": blocked("http://198.18.0.1/", "is a benchmarking address"),
    "reserved-240": blocked("http://240.0.0.1/", "is a reserved address"),
    "multicast": blocked("http://224.0.0.1/", "is a multicast address"),
    "broadcast": blocked("http://255.255.255.255/", "is the broadcast address"),
    "documentation": blocked("http://192.0.2.1/", "is a documentation address"),
    # IPv6 literals, and IPv6 forms that carry an internal IPv4 address
    "v6-unspecified": blocked("http://[::]/", "blocked: :: is the unspecified address"),
    "v6-loopback": blocked("http://[::1]/", "blocked: ::1 is a loopback address"),
    "v4-mapped-dotted": blocked(
        "http://[::ffff:127.0.0.1]/",
        "a loopback address (127.0.0.1) embedded in an IPv4-mapped address",
    ),
    "v4-mapped-hex": blocked("http://[::ffff:7f00:1]/", "(127.0.0.1) embedded in an IPv4-mapped"),
    "v4-mapped-metadata": blocked("http://[::ffff:a9fe:a9fe]/", "a link-local address"),
    "v4-compatible": blocked("http://[::127.0.0.1]/", "embedded in an IPv4-compatible address"),
    "nat64": blocked(
        "http://[64:ff9b::a00:1]/", "a private address (10.0.0.1) embedded in a NAT64 address"
    ),
    "nat64-loopback": blocked("http://[64:ff9b::7f00:1]/", "(127.0.0.1) embedded in a NAT64"),
    "nat64-local-use": blocked("http://[64:ff9b:1::808:808]/", "a local-use NAT64 address"),
    "6to4": blocked("http://[2002:a00:1::]/", "(10.0.0.1) embedded in a 6to4 address"),
    "6to4-loopback": blocked("http://[2002:7f00:1::1]/", "(127.0.0.1) embedded in a 6to4"),
    "teredo-client": blocked(
        "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/",
        "a private address (10.0.0.1) embedded in a Teredo address",
    ),
    "unique-local": blocked("http://[fc00::1]/", "is a unique-local (private) address"),
    "unique-local-fd": blocked("http://[fd12:3456::1]/", "is a unique-local (private) address"),
    "v6-link-local": blocked("http://[fe80::1]/", "is a link-local address"),
    "site-local": blocked("http://[fec0::1]/", "is a site-local address"),
    "v6-multicast": blocked("http://[ff02::1]/", "is a multicast address"),
    "v6-documentation": blocked("http://[2001:db8::1]/", "is a documentation address"),
    "v6-reserved": blocked("http://[100::1]/", "is a discard-only address"),
    # names
    "localhost-trailing-dot": blocked("http://localhost./", "localhost resolves to a loopback"),
    "localhost-uppercase": blocked("http://LOCALHOST/", "localhost resolves to a loopback"),
    "localhost-subdomain": blocked("http://api.localhost/", "resolves to a loopback address"),
    "name-to-private": blocked(
        "http://example.test/",
        "blocked: example.test resolves to a private address (10.0.0.1)",
        **{"example.test": ["10.0.0.1"]},
    ),
    "name-to-metadata": blocked(
        "http://metadata.test/",
        "metadata.test resolves to a link-local address (169.254.169.254)",
        **{"metadata.test": ["169.254.169.254"]},
    ),
    "name-public-and-private": blocked(
        "http://mixed.test/",
        "mixed.test resolves to a private address (192.168.0.10)",
        **{"mixed.test": [PUBLIC, "192.168.0.10"]},
    ),
    "name-private-aaaa": blocked(
        "http://six.test/",
        "six.test resolves to a unique-local (private) address (fd00::5)",
        **{"six.test": [PUBLIC6, "fd00::5"]},
    ),
    "name-to-v4-mapped": blocked(
        "http://mapped.test/",
        "resolves to a private address (10.1.2.3) embedded in an IPv4-mapped address",
        **{"mapped.test": ["::ffff:10.1.2.3"]},
    ),
    "idn-to-private": blocked(
        "http://bücher.example/",
        "blocked: xn--bcher-kva.example resolves to a private address (10.0.0.7)",
        **{"xn--bcher-kva.example": ["10.0.0.7"]},
    ),
    "uppercase-trailing-dot-name": blocked(
        "http://Example.TEST./",
        "blocked: example.test resolves to a private address (10.0.0.1)",
        **{"example.test": ["10.0.0.1"]},
    ),
    "fragment-at-trick": blocked("http://127.0.0.1#@example.com/", "127.0.0.1 is a loopback"),
    # malformed on purpose
    "userinfo": invalid("http://a@127.0.0.1/", "user name or password"),
    "userinfo-hostname": invalid("http://example.com@127.0.0.1/", "user name or password"),
    "userinfo-password": invalid("https://user:pw@example.com/", "user name or password"),
    "userinfo-port-trick": invalid("http://example.com:80@127.0.0.1/", "user name or password"),
    "backslash": invalid("http://example.com\\@127.0.0.1/", "backslashes"),
    "percent-encoded-host": invalid("http://%31%32%37.0.0.1/", "must not contain '%'"),
    "ipv6-zone": invalid("http://[fe80::1%25eth0]/", "must not contain '%'"),
    "ipv4-bad-octal": invalid("http://08.0.0.1/", "not a valid IPv4 address"),
    "ipv4-five-parts": invalid("http://1.2.3.4.5/", "not a valid IPv4 address"),
    "ipv4-overflow": invalid("http://256.0.0.1/", "not a valid IPv4 address"),
    "ends-in-number": invalid("http://example.123/", "not a valid IPv4 address"),
    "bad-ipv6": invalid("http://[::ffff:127.0.0.1:80]/", "not a valid URL"),
    "bad-ipv6-text": invalid("http://[::1]x/", "text after its IPv6 address"),
    "empty-label": invalid("http://a..example/", "not a valid host name"),
    "no-host": invalid("http:///path", "has no host"),
    "scheme-relative": invalid("//example.com/", "absolute http:// or https://"),
    "file": invalid("file:///etc/passwd", "absolute http:// or https://"),
    "gopher": invalid("gopher://127.0.0.1:25/", "absolute http:// or https://"),
    "no-slashes": invalid("http:example.com", "absolute http:// or https://"),
    "port-zero": invalid("http://example.com:0/", "port must be a number from 1 to 65535"),
    "port-too-big": invalid("http://example.com:65536/", "port must be a number"),
    "port-not-a-number": invalid("http://example.com:8o/", "port must be a number"),
    "whitespace": invalid("http://exa mple.com/", "spaces or control characters"),
    "newline": invalid("http://example.com/\r\nX-Injected: 1", "spaces or control characters"),
    "too-long": invalid("https://example.com/" + "a" * 2048, "longer than 2048 characters"),
    "bad-idn": invalid("http://☃.net/", "not a valid internationalised domain name"),
}


ACCEPTED = {
    "https-name": Case(
        "https://hooks.example.com/in?key=abc", "OK", PUBLIC, {"hooks.example.com": [[PUBLIC]]}
    ),
    "public-ipv4": Case("http://8.8.8.8/", "OK", "8.8.8.8"),
    "public-ipv6": Case(f"http://[{PUBLIC6}]:8443/", "OK", PUBLIC6),
    "public-v4-mapped": Case("http://[::ffff:8.8.8.8]/", "OK", "::ffff:808:808"),
    "public-nat64": Case("http://[64:ff9b::808:808]/", "OK", "64:ff9b::808:808"),
    "fragment-at-trick-public": Case(
        "http://example.com#@127.0.0.1/", "OK", PUBLIC, {"example.com": [[PUBLIC]]}
    ),
    "dual-stack": Case("http://both.test/", "OK", PUBLIC6, {"both.test": [[PUBLIC6, PUBLIC]]}),
    "allowed-loopback": Case("http://127.0.0.1:9000/", "OK", "127.0.0.1", allowed=LOOPBACK_OPEN),
    "allowed-localhost": Case("http://localhost:9000/", "OK", "127.0.0.1", allowed=LOOPBACK_OPEN),
    "allowed-decimal": Case("http://2130706433/", "OK", "127.0.0.1", allowed=LOOPBACK_OPEN),
    "allowed-v4-mapped": Case(
        "http://[::ffff:127.0.0.1]/", "OK", "::ffff:7f00:1", allowed=LOOPBACK_OPEN
    ),
    "allowed-name": Case(
        "http://dev.test/",
        "OK",
        "10.0.0.9",
        {"dev.test": [["10.0.0.9"]]},
        allowed=(ip_network("10.0.0.0/24"),),
    ),
}

STILL_BLOCKED_WHEN_LOOPBACK_IS_OPEN = {
    "private": Case("http://10.0.0.1/", "FORBIDDEN_TARGET", "private", allowed=LOOPBACK_OPEN),
    "v6-loopback": Case("http://[::1]/", "FORBIDDEN_TARGET", "loopback", allowed=LOOPBACK_OPEN),
    "metadata": Case(
        "http://169.254.169.254/", "FORBIDDEN_TARGET", "link-local", allowed=LOOPBACK_OPEN
    ),
    "name-outside-opened": Case(
        "http://dev.test/",
        "FORBIDDEN_TARGET",
        "dev.test resolves to a private address (10.0.1.9)",
        {"dev.test": [["10.0.1.9"]]},
        allowed=(ip_network("10.0.0.0/24"),),
    ),
}

ALL_CASES = {**BYPASS_ATTEMPTS, **ACCEPTED, **STILL_BLOCKED_WHEN_LOOPBACK_IS_OPEN}


# Addresses of these forms are judged by the IPv4 address they carry, not by the range
# of IPv6 rules they fall in (the first address of 2001::/23 is a Teredo address).
CARRY_IPV4: tuple[Network, ...] = (
    ip_network("::ffff:0:0/96"),
    ip_network("64:ff9b::/96"),
    ip_network("2002::/16"),
    ip_network("2001::/32"),
)
RULES: list[tuple[Network, str]] = [*_IPV4_RULES, *_IPV6_RULES]


def narrowest_reason(address: IPAddress) -> str:
    """The reason of the narrowest blocked range that holds ``address``."""
    holding = [(net, reason) for net, reason in RULES if address in net]
    return max(holding, key=lambda rule: rule[0].prefixlen)[1]


@pytest.mark.parametrize("network", [net for net, _ in RULES], ids=str)
def test_every_blocked_range_is_refused_from_end_to_end_for_its_narrowest_reason(
    network: Network,
) -> None:
    """Every range the policy blocks is refused at its first and last address, also those
    no bypass attempt names, and a narrower range inside a wider one (the broadcast
    address in 240.0.0.0/4) names its own reason: no rule is shadowed by an earlier one."""
    edges = [network[0], network[-1]]
    checked = [address for address in edges if not any(address in n for n in CARRY_IPV4)]
    assert checked
    for address in checked:
        assert forbidden_reason(address, ()) == narrowest_reason(address), address


@pytest.mark.parametrize("case", ALL_CASES.values(), ids=ALL_CASES.keys())
async def test_target_policy(case: Case) -> None:
    resolver = FakeResolver(case.dns)

    async def check() -> IPAddress:
        url = parse_callback_url(case.url, require_https=case.require_https)
        target = await resolve_target(url, resolver, case.allowed)
        return target.address

    if case.expected == "OK":
        assert str(await check()) == case.message
    else:
        with pytest.raises(TargetError) as caught:
            await check()
        assert caught.value.code == case.expected
        assert case.message in caught.value.message
    # One lookup at most per check, and none for IP literals or localhost.
    assert len(resolver.calls) <= 1
    assert all(host in case.dns for host, _port in resolver.calls)


async def test_each_resolution_looks_up_once_and_pins_that_answer() -> None:
    # DNS rebinding: the first answer is public, every later one private.
    resolver = FakeResolver({"rebind.test": [[PUBLIC], ["10.0.0.1"]]})
    url = parse_callback_url("https://rebind.test/hook", require_https=True)

    target = await resolve_target(url, resolver, ())

    assert resolver.calls == [("rebind.test", 443)]
    assert target.address == IPv4Address(PUBLIC)
    assert target.addresses == (IPv4Address(PUBLIC),)
    with pytest.raises(TargetError, match=r"rebind\.test resolves to a private address"):
        await resolve_target(url, resolver, ())
    assert len(resolver.calls) == 2


async def test_dns_failure_is_a_target_error_naming_the_host() -> None:
    url = parse_callback_url("https://nowhere.test/hook?api_key=SECRET", require_https=True)

    with pytest.raises(ResolutionError) as caught:
        await resolve_target(url, FakeResolver({}), ())

    assert caught.value.message == "DNS lookup failed for nowhere.test"
    assert caught.value.code == "INVALID"
    assert isinstance(caught.value, TargetError)


async def test_empty_dns_answer_is_a_dns_failure() -> None:
    url = parse_callback_url("https://empty.test/", require_https=True)

    with pytest.raises(ResolutionError, match=r"DNS lookup failed for empty\.test"):
        await resolve_target(url, FakeResolver({"empty.test": [[]]}), ())


async def test_system_resolver_finds_localhost() -> None:
    addresses = await SystemResolver().resolve("localhost", 80)

    assert addresses
    assert all(address.is_loopback for address in addresses)


def test_require_https_refuses_http() -> None:
    with pytest.raises(TargetError, match="must use https://") as caught:
        parse_callback_url("http://example.com/", require_https=True)
    assert caught.value.code == "INVALID"


def test_host_is_normalised() -> None:
    url = parse_callback_url("HTTPS://Bücher.Example.:443/Path?Q=1#frag", require_https=True)

    assert (url.scheme, url.host, url.port, url.path, url.query) == (
        "https",
        "xn--bcher-kva.example",
        443,
        "/Path",
        "Q=1",
    )
    assert url.ip is None
    assert url.netloc == "xn--bcher-kva.example"
    assert url.full == "https://xn--bcher-kva.example/Path?Q=1"


def test_ip_literals_are_parsed_to_their_address() -> None:
    assert parse_callback_url("http://0x7f.1:8080", require_https=False).ip == IPv4Address(
        "127.0.0.1"
    )
    url = parse_callback_url("http://[::FFFF:127.0.0.1]:8080/", require_https=False)
    assert url.ip == IPv6Address("::ffff:7f00:1")
    assert url.netloc == "[::ffff:7f00:1]:8080"


async def test_api_key_values_never_reach_messages_or_repr() -> None:
    query = "api_key=TOPSECRET"
    for url in (f"http://user@example.com/?{query}", f"http://example.com:99999/?{query}"):
        with pytest.raises(TargetError) as caught:
            parse_callback_url(url, require_https=False)
        assert "TOPSECRET" not in caught.value.message
    resolver = FakeResolver({"private.test": [["10.0.0.1"]]})
    for url in (f"http://127.0.0.1/?{query}", f"http://private.test/?{query}"):
        with pytest.raises(TargetError) as caught:
            await resolve_target(parse_callback_url(url, require_https=False), resolver, ())
        assert "TOPSECRET" not in caught.value.message

    parsed = parse_callback_url(f"https://example.com/hook?{query}", require_https=True)

    assert "TOPSECRET" not in repr(parsed)
    assert parsed.redacted == "https://example.com/hook"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.5", "a private address"),
        ("127.0.0.1", "a loopback address"),
        ("::ffff:10.0.0.5", "a private address (10.0.0.5) embedded in an IPv4-mapped address"),
        ("2002:c000:201::", "a documentation address (192.0.2.1) embedded in a 6to4 address"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("2002:808:808::1", None),
    ],
)
def test_forbidden_reason(address: str, reason: str | None) -> None:
    assert forbidden_reason(ip_address(address), ()) == reason


def test_allowed_networks_open_only_what_they_contain() -> None:
    allowed: list[IPv4Network | IPv6Network] = [ip_network("127.0.0.0/8"), ip_network("::1/128")]

    assert forbidden_reason(ip_address("127.0.0.2"), allowed) is None
    assert forbidden_reason(ip_address("::1"), allowed) is None
    assert forbidden_reason(ip_address("::ffff:127.0.0.1"), allowed) is None
    assert forbidden_reason(ip_address("10.0.0.1"), allowed) == "a private address"


# An IPv4 allow-list opens those IPv4 hosts, and the IPv4-mapped spelling of them (the
# same socket address). NAT64, 6to4 and Teredo forms reach an IPv4 host through a
# translator or relay, somewhere else: they are judged by the embedded address against
# the rules, and opened only by an allowed network that holds the IPv6 address itself.
TRANSLATED = {
    "nat64": ("64:ff9b::7f00:1", "a loopback address (127.0.0.1) embedded in a NAT64 address"),
    "6to4": ("2002:7f00:1::1", "a loopback address (127.0.0.1) embedded in a 6to4 address"),
    "teredo-server": (
        "2001:0:7f00:1::1",
        "a loopback address (127.0.0.1) embedded in a Teredo address",
    ),
    "nat64-private": (
        "64:ff9b::a00:1",
        "a private address (10.0.0.1) embedded in a NAT64 address",
    ),
}


@pytest.mark.parametrize(("address", "reason"), TRANSLATED.values(), ids=TRANSLATED.keys())
def test_an_ipv4_allow_list_does_not_open_translated_forms(address: str, reason: str) -> None:
    allowed: list[IPv4Network | IPv6Network] = [ip_network("127.0.0.0/8"), ip_network("10.0.0.0/8")]

    assert forbidden_reason(ip_address(address), allowed) == reason


@pytest.mark.parametrize(
    "address", [address for address, _ in TRANSLATED.values()], ids=TRANSLATED.keys()
)
def test_an_allowed_ipv6_network_opens_translated_forms_it_holds(address: str) -> None:
    allowed: list[IPv4Network | IPv6Network] = [ip_network(address)]

    assert forbidden_reason(ip_address(address), allowed) is None


async def test_a_name_resolving_to_a_translated_form_of_an_allowed_address_is_refused() -> None:
    resolver = FakeResolver({"nat64.test": [["64:ff9b::7f00:1"]]})
    url = parse_callback_url("http://nat64.test/hook", require_https=False)

    with pytest.raises(TargetError) as caught:
        await resolve_target(url, resolver, [ip_network("127.0.0.0/8")])

    assert caught.value.code == "FORBIDDEN_TARGET"
    assert "embedded in a NAT64 address" in caught.value.message
