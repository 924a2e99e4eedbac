"""Settings: every knob of the service, read from the environment in one place.

Each variable carries the ``WEBHOOKS_`` prefix; the database URL may also come as plain
``DATABASE_URL``. A bad value raises :class:`SettingsError` naming the variable and what
was expected, so start-up stops with a message an operator can act on.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar
from urllib.parse import parse_qs, urlsplit

from app.core.errors import WebhooksError

Environment = Literal["development", "production"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

T = TypeVar("T")


class SettingsError(WebhooksError, ValueError):
    """A configuration variable has a value the service cannot use."""


@dataclass(frozen=True)
class Settings:
    """The service's configuration. Build it with :meth:`from_env`."""

    database_url: str | None = None
    env: Environment = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    retry_interval_seconds: float = 360.0
    max_attempts: int = 10
    request_timeout_seconds: float = 15.0
    smtp_url: str | None = None
    email_from: str = "PlanOmatic Webhooks <webhooks@planomatic.invalid>"
    email_window_seconds: float = 300.0
    smtp_timeout_seconds: float = 30.0
    email_concurrency: int = 2
    email_address_per_hour: int = 10
    email_address_per_day: int = 40
    secret_key: str | None = None
    previous_secret_keys: tuple[str, ...] = ()
    max_payload_bytes: int = 256 * 1024
    worker_concurrency: int = 50
    poll_interval_seconds: float = 0.5
    slow_attempt_seconds: float = 2.0
    stalled_after_seconds: float = 60.0
    allowed_networks: tuple[Network, ...] = field(default_factory=tuple)
    data_dir: str = ".webhooks"
    db_pool_max_size: int = 10
    rate_limit_per_second: float = 50.0
    rate_limit_burst: int = 200
    retention_days: int = 30
    disable_after_failing_seconds: float = 5 * 24 * 3600.0
    max_request_bytes: int = 1024 * 1024
    body_timeout_seconds: float = 30.0
    max_query_cost: int = 50_000
    rate_limit_unauthenticated_per_second: float = 1.0
    rate_limit_unauthenticated_burst: int = 20
    trusted_proxies: tuple[str, ...] = ()
    ws_key_check_seconds: float = 5.0
    ws_max_lifetime_seconds: float = 3600.0
    db_connect_timeout_seconds: int = 5
    db_dead_after_seconds: int = 10
    db_statement_timeout_seconds: float = 30.0
    db_pool_timeout_seconds: float = 10.0

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        database_url = reader.get("WEBHOOKS_DATABASE_URL") or reader.get("DATABASE_URL")
        if database_url is not None:
            _check_database_url(database_url)
        environment = reader.choice("WEBHOOKS_ENV", ("development", "production"), "development")
        settings = cls(
            database_url=database_url,
            env=environment,  # type: ignore[arg-type]
            host=reader.get("WEBHOOKS_HOST") or cls.host,
            port=reader.number("WEBHOOKS_PORT", int, cls.port, minimum=1, maximum=65535),
            retry_interval_seconds=reader.number(
                "WEBHOOKS_RETRY_INTERVAL_SECONDS", float, cls.retry_interval_seconds, minimum=0.0
            ),
            max_attempts=reader.number(
                "WEBHOOKS_MAX_ATTEMPTS", int, cls.max_attempts, minimum=1, maximum=100
            ),
            request_timeout_seconds=reader.number(
                "WEBHOOKS_REQUEST_TIMEOUT_SECONDS",
                float,
                cls.request_timeout_seconds,
                minimum=0.1,
                maximum=300.0,
            ),
            smtp_url=_smtp_url(reader.get("WEBHOOKS_SMTP_URL")),
            email_from=reader.get("WEBHOOKS_EMAIL_FROM") or cls.email_from,
            email_window_seconds=reader.number(
                "WEBHOOKS_EMAIL_WINDOW_SECONDS", float, cls.email_window_seconds, minimum=0.0
            ),
            secret_key=reader.get("WEBHOOKS_SECRET_KEY"),
            previous_secret_keys=tuple(
                key.strip()
                for key in (reader.get("WEBHOOKS_PREVIOUS_SECRET_KEYS") or "").split(",")
                if key.strip()
            ),
            max_payload_bytes=reader.number(
                "WEBHOOKS_MAX_PAYLOAD_BYTES", int, cls.max_payload_bytes, minimum=1024
            ),
            worker_concurrency=reader.number(
                "WEBHOOKS_WORKER_CONCURRENCY", int, cls.worker_concurrency, minimum=1, maximum=1000
            ),
            poll_interval_seconds=reader.number(
                "WEBHOOKS_POLL_INTERVAL_SECONDS",
                float,
                cls.poll_interval_seconds,
                minimum=0.05,
                maximum=60.0,
            ),
            slow_attempt_seconds=reader.number(
                "WEBHOOKS_SLOW_ATTEMPT_SECONDS",
                float,
                cls.slow_attempt_seconds,
                minimum=0.01,
                maximum=300.0,
            ),
            stalled_after_seconds=reader.number(
                "WEBHOOKS_STALLED_AFTER_SECONDS", float, cls.stalled_after_seconds, minimum=5.0
            ),
            allowed_networks=_networks(reader.get("WEBHOOKS_ALLOWED_NETWORKS")),
            data_dir=reader.get("WEBHOOKS_DATA_DIR") or cls.data_dir,
            db_pool_max_size=reader.number(
                "WEBHOOKS_DB_POOL_MAX_SIZE", int, cls.db_pool_max_size, minimum=2, maximum=500
            ),
        )
        settings = replace(
            settings,
            rate_limit_per_second=reader.number(
                "WEBHOOKS_RATE_LIMIT_PER_SECOND", float, cls.rate_limit_per_second, minimum=0.0
            ),
            rate_limit_burst=reader.number(
                "WEBHOOKS_RATE_LIMIT_BURST", int, cls.rate_limit_burst, minimum=1
            ),
            disable_after_failing_seconds=reader.number(
                "WEBHOOKS_DISABLE_AFTER_FAILING_SECONDS",
                float,
                cls.disable_after_failing_seconds,
                minimum=0.0,
            ),
            retention_days=reader.number(
                "WEBHOOKS_RETENTION_DAYS", int, cls.retention_days, minimum=1
            ),
            max_request_bytes=reader.number(
                "WEBHOOKS_MAX_REQUEST_BYTES", int, cls.max_request_bytes, minimum=4096
            ),
            body_timeout_seconds=reader.number(
                "WEBHOOKS_BODY_TIMEOUT_SECONDS",
                float,
                cls.body_timeout_seconds,
                minimum=0.1,
                maximum=3600.0,
            ),
            max_query_cost=reader.number(
                "WEBHOOKS_MAX_QUERY_COST", int, cls.max_query_cost, minimum=100
            ),
        )
        settings = replace(
            settings,
            # libpq's connect_timeout is whole seconds, and treats 1 as 2.
            db_connect_timeout_seconds=reader.number(
                "WEBHOOKS_DB_CONNECT_TIMEOUT_SECONDS",
                int,
                cls.db_connect_timeout_seconds,
                minimum=2,
                maximum=300,
            ),
            db_dead_after_seconds=reader.number(
                "WEBHOOKS_DB_DEAD_AFTER_SECONDS",
                int,
                cls.db_dead_after_seconds,
                minimum=2,
                maximum=3600,
            ),
            db_statement_timeout_seconds=reader.number(
                "WEBHOOKS_DB_STATEMENT_TIMEOUT_SECONDS",
                float,
                cls.db_statement_timeout_seconds,
                minimum=0.0,
            ),
            db_pool_timeout_seconds=reader.number(
                "WEBHOOKS_DB_POOL_TIMEOUT_SECONDS",
                float,
                cls.db_pool_timeout_seconds,
                minimum=0.5,
                maximum=300.0,
            ),
            rate_limit_unauthenticated_per_second=reader.number(
                "WEBHOOKS_RATE_LIMIT_UNAUTHENTICATED_PER_SECOND",
                float,
                cls.rate_limit_unauthenticated_per_second,
                minimum=0.0,
            ),
            rate_limit_unauthenticated_burst=reader.number(
                "WEBHOOKS_RATE_LIMIT_UNAUTHENTICATED_BURST",
                int,
                cls.rate_limit_unauthenticated_burst,
                minimum=1,
            ),
            trusted_proxies=_proxies(reader.get("WEBHOOKS_TRUSTED_PROXIES")),
            ws_key_check_seconds=reader.number(
                "WEBHOOKS_WS_KEY_CHECK_SECONDS",
                float,
                cls.ws_key_check_seconds,
                minimum=0.1,
                maximum=60.0,
            ),
            ws_max_lifetime_seconds=reader.number(
                "WEBHOOKS_WS_MAX_LIFETIME_SECONDS",
                float,
                cls.ws_max_lifetime_seconds,
                minimum=1.0,
            ),
            smtp_timeout_seconds=reader.number(
                "WEBHOOKS_SMTP_TIMEOUT_SECONDS",
                float,
                cls.smtp_timeout_seconds,
                minimum=1.0,
                maximum=600.0,
            ),
            email_concurrency=reader.number(
                "WEBHOOKS_EMAIL_CONCURRENCY", int, cls.email_concurrency, minimum=1, maximum=100
            ),
            email_address_per_hour=reader.number(
                "WEBHOOKS_EMAIL_ADDRESS_PER_HOUR", int, cls.email_address_per_hour, minimum=0
            ),
            email_address_per_day=reader.number(
                "WEBHOOKS_EMAIL_ADDRESS_PER_DAY", int, cls.email_address_per_day, minimum=0
            ),
        )
        if settings.is_production and settings.smtp_url:
            _check_smtp_credentials_protected(settings.smtp_url)
        if settings.is_production and not settings.secret_key:
            raise SettingsError(
                "WEBHOOKS_SECRET_KEY is required when WEBHOOKS_ENV=production: "
                "generate one with `webhooks secret-key generate`"
            )
        return settings

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields replaced (CLI flags, tests)."""
        return replace(self, **changes)  # type: ignore[arg-type]


class _Reader:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def get(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.get(name)
        if value is None:
            return default
        if value not in allowed:
            raise SettingsError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        return value

    def number(
        self,
        name: str,
        kind: Callable[[str], T],
        default: T,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> T:
        raw = self.get(name)
        if raw is None:
            return default
        noun = "a whole number" if kind is int else "a number"
        try:
            value = kind(raw)
        except ValueError:
            raise SettingsError(f"{name} must be {noun}; got {raw!r}") from None
        as_float = float(value)  # type: ignore[arg-type]
        if minimum is not None and as_float < minimum:
            raise SettingsError(f"{name} must be {noun} of at least {minimum:g}; got {raw!r}")
        if maximum is not None and as_float > maximum:
            raise SettingsError(f"{name} must be {noun} of at most {maximum:g}; got {raw!r}")
        return value


def _check_database_url(url: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme not in ("postgresql", "postgres"):
        raise SettingsError(
            "WEBHOOKS_DATABASE_URL (or DATABASE_URL) must be a postgresql:// URL; "
            f"got a {scheme or 'scheme-less'} URL"
        )


def _smtp_url(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise SettingsError(
            "WEBHOOKS_SMTP_URL must look like smtp://[user:password@]host[:port] or smtps://...; "
            "got a value that does not"
        )
    return url


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


def _networks(raw: str | None) -> tuple[Network, ...]:
    return _cidrs(raw, "WEBHOOKS_ALLOWED_NETWORKS", "CIDRs")


def _proxies(raw: str | None) -> tuple[str, ...]:
    """Addresses or CIDRs of the proxies whose X-Forwarded-For / X-Forwarded-Proto count."""
    networks = _cidrs(raw, "WEBHOOKS_TRUSTED_PROXIES", "addresses or CIDRs")
    return tuple(str(network) for network in networks)


def _cidrs(raw: str | None, variable: str, what: str) -> tuple[Network, ...]:
    if raw is None:
        return ()
    networks: list[Network] = []
    for item in raw.split(","):
        text = item.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise SettingsError(
                f"{variable} must be a comma-separated list of {what}; {text!r} is not one"
            ) from None
    return tuple(networks)
