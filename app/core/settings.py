"""Settings: every knob of the service, read from the environment in one place.

Each setting is declared once, as a field of :class:`Settings` made by :func:`setting`:
its type, its default, and how a value is read and checked. The field ``x`` is read from
the variable ``WEBHOOKS_X``; the database URL may also come as plain ``DATABASE_URL``. A
blank variable counts as unset. A bad value raises :class:`SettingsError` naming the
variable and what was expected, so start-up stops with a message an operator can act on.
README's "Configuration" table lists the same variables and defaults (a unit test
compares them).
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, TypeVar, cast, get_args
from urllib.parse import parse_qs, urlsplit

from app.core.errors import WebhooksError

Environment = Literal["development", "production"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

T = TypeVar("T")
N = TypeVar("N", int, float)

PREFIX = "WEBHOOKS_"

# How a setting's value is read: (the variable's name, its value, stripped and not blank).
Parse = Callable[[str, str], T]


class SettingsError(WebhooksError, ValueError):
    """A configuration variable has a value the service cannot use."""


@dataclass(frozen=True)
class Declaration:
    """A setting as declared: its field, the variables it is read from (the first set
    wins), its default and its parser."""

    name: str
    variables: tuple[str, ...]
    default: object
    parse: Parse[object]

    @property
    def label(self) -> str:
        """How errors name the setting: ``WEBHOOKS_X``, or ``WEBHOOKS_X (or OTHER)``."""
        return " ".join([self.variables[0], *(f"(or {alias})" for alias in self.variables[1:])])


_PARSE = "settings.parse"
_ALSO = "settings.also"


def setting(default: T, parse: Parse[T], *, also: tuple[str, ...] = ()) -> T:
    """Declare a setting: a field of :class:`Settings` with ``default``, read by ``parse``
    from ``WEBHOOKS_<FIELD>`` or else from the variables ``also`` names."""
    return field(default=default, metadata={_PARSE: parse, _ALSO: also})


def text(variable: str, raw: str) -> str:
    return raw


def whole(*, minimum: float | None = None, maximum: float | None = None) -> Parse[int]:
    """A whole number within bounds."""
    return _bounded(int, "a whole number", minimum, maximum)


def number(*, minimum: float | None = None, maximum: float | None = None) -> Parse[float]:
    """A number within bounds."""
    return _bounded(float, "a number", minimum, maximum)


def _bounded(
    kind: Callable[[str], N], noun: str, minimum: float | None, maximum: float | None
) -> Parse[N]:
    def parse(variable: str, raw: str) -> N:
        try:
            value = kind(raw)
        except ValueError:
            raise SettingsError(f"{variable} must be {noun}; got {raw!r}") from None
        if not math.isfinite(value):
            # float() reads "nan" and "inf", which pass every bound or break every timer.
            raise SettingsError(f"{variable} must be {noun}; got {raw!r}")
        if minimum is not None and value < minimum:
            raise SettingsError(f"{variable} must be {noun} of at least {minimum:g}; got {raw!r}")
        if maximum is not None and value > maximum:
            raise SettingsError(f"{variable} must be {noun} of at most {maximum:g}; got {raw!r}")
        return value

    return parse


_FLAGS = {"1": True, "true": True, "on": True, "0": False, "false": False, "off": False}


def flag(variable: str, raw: str) -> bool:
    """On or off."""
    value = _FLAGS.get(raw.lower())
    if value is None:
        raise SettingsError(f"{variable} must be one of {', '.join(_FLAGS)}; got {raw!r}")
    return value


def _environment(variable: str, raw: str) -> Environment:
    allowed = get_args(Environment)
    if raw not in allowed:
        raise SettingsError(f"{variable} must be one of {', '.join(allowed)}; got {raw!r}")
    return cast(Environment, raw)


def _database_url(variable: str, raw: str) -> str:
    scheme = urlsplit(raw).scheme
    if scheme not in ("postgresql", "postgres"):
        raise SettingsError(
            f"{variable} must be a postgresql:// URL; got a {scheme or 'scheme-less'} URL"
        )
    return raw


def _smtp_url(variable: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise SettingsError(
            f"{variable} must look like smtp://[user:password@]host[:port] or smtps://...; "
            "got a value that does not"
        )
    return raw


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _public_url(variable: str, raw: str) -> str:
    """The service's own origin as its users reach it: ``https://host[:port]``, no path,
    written as a browser writes its ``Origin`` (host in lower case, no default port): the
    portal's websocket is accepted only from exactly this origin."""
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # not a number, or out of 0-65535
        port = -1
    if port == 0:
        port = -1
    if (
        scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or port == -1
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise SettingsError(
            f"{variable} must be the service's origin, like https://hooks.example.com "
            "(scheme, host and optional port; no path)"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    shown_port = "" if port in (None, _DEFAULT_PORTS[scheme]) else f":{port}"
    return f"{scheme}://{host}{shown_port}"


def _comma_list(variable: str, raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _networks(variable: str, raw: str) -> tuple[Network, ...]:
    return _cidrs(variable, raw, "CIDRs")


def _proxies(variable: str, raw: str) -> tuple[str, ...]:
    """Addresses or CIDRs of the proxies whose X-Forwarded-For / X-Forwarded-Proto count."""
    return tuple(str(network) for network in _cidrs(variable, raw, "addresses or CIDRs"))


def _cidrs(variable: str, raw: str, what: str) -> tuple[Network, ...]:
    networks: list[Network] = []
    for entry in _comma_list(variable, raw):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise SettingsError(
                f"{variable} must be a comma-separated list of {what}; {entry!r} is not one"
            ) from None
    return tuple(networks)


@dataclass(frozen=True)
class Settings:
    """The service's configuration. Build it with :meth:`from_env`."""

    database_url: str | None = setting(None, _database_url, also=("DATABASE_URL",))
    env: Environment = setting("development", _environment)
    host: str = setting("127.0.0.1", text)
    port: int = setting(8000, whole(minimum=1, maximum=65535))
    retry_interval_seconds: float = setting(360.0, number(minimum=0.0))
    max_attempts: int = setting(10, whole(minimum=1, maximum=100))
    request_timeout_seconds: float = setting(15.0, number(minimum=0.1, maximum=300.0))
    smtp_url: str | None = setting(None, _smtp_url)
    email_from: str = setting("PlanOmatic Webhooks <webhooks@planomatic.invalid>", text)
    email_window_seconds: float = setting(300.0, number(minimum=0.0))
    smtp_timeout_seconds: float = setting(30.0, number(minimum=1.0, maximum=600.0))
    email_concurrency: int = setting(2, whole(minimum=1, maximum=100))
    email_address_per_hour: int = setting(10, whole(minimum=0))
    email_address_per_day: int = setting(40, whole(minimum=0))
    secret_key: str | None = setting(None, text)
    previous_secret_keys: tuple[str, ...] = setting((), _comma_list)
    max_payload_bytes: int = setting(256 * 1024, whole(minimum=1024))
    worker_concurrency: int = setting(50, whole(minimum=1, maximum=1000))
    poll_interval_seconds: float = setting(0.5, number(minimum=0.05, maximum=60.0))
    slow_attempt_seconds: float = setting(2.0, number(minimum=0.01, maximum=300.0))
    stalled_after_seconds: float = setting(60.0, number(minimum=5.0))
    allowed_networks: tuple[Network, ...] = setting((), _networks)
    data_dir: str = setting(".webhooks", text)
    db_pool_max_size: int = setting(10, whole(minimum=2, maximum=500))
    rate_limit_per_second: float = setting(50.0, number(minimum=0.0))
    rate_limit_burst: int = setting(200, whole(minimum=1))
    retention_days: int = setting(30, whole(minimum=1))
    disable_after_failing_seconds: float = setting(5 * 24 * 3600.0, number(minimum=0.0))
    max_request_bytes: int = setting(1024 * 1024, whole(minimum=4096))
    body_timeout_seconds: float = setting(30.0, number(minimum=0.1, maximum=3600.0))
    max_query_cost: int = setting(50_000, whole(minimum=100))
    rate_limit_unauthenticated_per_second: float = setting(1.0, number(minimum=0.0))
    rate_limit_unauthenticated_burst: int = setting(20, whole(minimum=1))
    trusted_proxies: tuple[str, ...] = setting((), _proxies)
    ws_key_check_seconds: float = setting(5.0, number(minimum=0.1, maximum=60.0))
    ws_max_lifetime_seconds: float = setting(3600.0, number(minimum=1.0))
    # libpq's connect_timeout is whole seconds, and treats 1 as 2.
    db_connect_timeout_seconds: int = setting(5, whole(minimum=2, maximum=300))
    db_dead_after_seconds: int = setting(10, whole(minimum=2, maximum=3600))
    db_statement_timeout_seconds: float = setting(30.0, number(minimum=0.0))
    db_pool_timeout_seconds: float = setting(10.0, number(minimum=0.5, maximum=300.0))
    fast_execution: bool = setting(True, flag)
    public_url: str | None = setting(None, _public_url)
    portal_link_max_seconds: int = setting(3600, whole(minimum=1, maximum=7 * 24 * 3600))
    portal_session_seconds: int = setting(8 * 3600, whole(minimum=60, maximum=30 * 24 * 3600))
    # A traced attempt's request carries its span's W3C traceparent (app/delivery/attempt_trace.py).
    send_traceparent: bool = setting(True, flag)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def public_origin(self) -> str | None:
        """Where users reach this service (portal links, the websocket's own origin):
        ``WEBHOOKS_PUBLIC_URL``; in development, by default, the address it listens on.
        None in production without it: a URL is never built from a request's Host
        header, which the requester writes."""
        if self.public_url is not None:
            return self.public_url
        if self.is_production:
            return None
        # Listening on every interface: this machine is reached on loopback.
        wildcard = self.host in ("", "0.0.0.0", "::")  # noqa: S104 - compared, not bound
        host = "127.0.0.1" if wildcard else self.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for declared in declarations():
            raw = next(filter(None, (_value(env, name) for name in declared.variables)), None)
            if raw is not None:
                values[declared.name] = declared.parse(declared.label, raw)
        settings = cls(**values)
        if settings.is_production and settings.smtp_url:
            _check_smtp_credentials_protected(settings.smtp_url)
        if settings.is_production and settings.public_url is not None:
            _check_public_url_secure(settings.public_url)
        if settings.is_production and not settings.secret_key:
            raise SettingsError(
                "WEBHOOKS_SECRET_KEY is required when WEBHOOKS_ENV=production: "
                "generate one with `webhooks secret-key generate`"
            )
        return settings

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields replaced (CLI flags, tests)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def declarations() -> tuple[Declaration, ...]:
    """Every setting, in the order :class:`Settings` declares them."""
    return tuple(
        Declaration(
            name=declared.name,
            variables=(PREFIX + declared.name.upper(), *declared.metadata[_ALSO]),
            default=declared.default,
            parse=declared.metadata[_PARSE],
        )
        for declared in fields(Settings)
    )


def _value(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _check_public_url_secure(origin: str) -> None:
    """In production the public URL is https, or http on this machine only (a local proxy;
    browsers treat loopback as secure): portal links carry a token, which plain http would
    send in clear, and browsers drop the Secure session cookie over it, so every opened
    link would end on "session ended"."""
    parts = urlsplit(origin)
    if parts.scheme == "https" or parts.hostname in ("localhost", "127.0.0.1", "::1"):
        return
    raise SettingsError(
        "WEBHOOKS_PUBLIC_URL must be https:// when WEBHOOKS_ENV=production (http only for "
        f"localhost and 127.0.0.1): portal links and the session cookie need it; got {origin}"
    )


def _check_smtp_credentials_protected(url: str) -> None:
    """In production, an SMTP password may travel only under TLS (or to this machine).

    Refused rather than warned about: a warning in a log nobody reads still sends the
    password in clear on every email, and the fix is one edit of the URL. Plain
    ``smtp://`` upgrades when the server offers STARTTLS, but an attacker on the path can
    strip the offer, so only ``?starttls=1`` (required) or ``smtps://`` count. A relay on
    loopback never puts the password on a network.
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return
    if parts.scheme == "smtps":
        return
    starttls = parse_qs(parts.query).get("starttls", [""])[-1].lower()
    if starttls in ("1", "true", "yes", "on"):
        return
    if is_loopback_host(parts.hostname or ""):
        return
    raise SettingsError(
        f"WEBHOOKS_SMTP_URL has credentials for {parts.hostname} but does not require "
        "TLS, so the password could travel in clear: add ?starttls=1 or use smtps:// "
        "(required when WEBHOOKS_ENV=production)"
    )


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (a relay on this machine)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
