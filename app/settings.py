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
from urllib.parse import urlsplit

Environment = Literal["development", "production"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

T = TypeVar("T")


class SettingsError(ValueError):
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
        )
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


def _networks(raw: str | None) -> tuple[Network, ...]:
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
                "WEBHOOKS_ALLOWED_NETWORKS must be a comma-separated list of CIDRs; "
                f"{text!r} is not one"
            ) from None
    return tuple(networks)
