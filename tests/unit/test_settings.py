"""Settings: every knob read from WEBHOOKS_ variables, with errors naming the variable."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from pathlib import Path

import pytest

from app.core.settings import Settings, SettingsError, declarations

README = Path(__file__).resolve().parents[2] / "README.md"

# One value for every variable, and the field and value it must produce.
EVERY_VARIABLE: dict[str, tuple[str, str, object]] = {
    "WEBHOOKS_DATABASE_URL": (
        "postgresql://app:pw@db.internal:5433/webhooks",
        "database_url",
        "postgresql://app:pw@db.internal:5433/webhooks",
    ),
    "WEBHOOKS_ENV": ("production", "env", "production"),
    "WEBHOOKS_HOST": ("0.0.0.0", "host", "0.0.0.0"),
    "WEBHOOKS_PORT": ("9000", "port", 9000),
    "WEBHOOKS_RETRY_INTERVAL_SECONDS": ("30.5", "retry_interval_seconds", 30.5),
    "WEBHOOKS_MAX_ATTEMPTS": ("7", "max_attempts", 7),
    "WEBHOOKS_REQUEST_TIMEOUT_SECONDS": ("4", "request_timeout_seconds", 4.0),
    "WEBHOOKS_SMTP_URL": (
        "smtps://mailer:pw@smtp.example.com:465",
        "smtp_url",
        "smtps://mailer:pw@smtp.example.com:465",
    ),
    "WEBHOOKS_EMAIL_FROM": ("Hooks <hooks@example.com>", "email_from", "Hooks <hooks@example.com>"),
    "WEBHOOKS_EMAIL_WINDOW_SECONDS": ("60", "email_window_seconds", 60.0),
    "WEBHOOKS_SMTP_TIMEOUT_SECONDS": ("12", "smtp_timeout_seconds", 12.0),
    "WEBHOOKS_EMAIL_CONCURRENCY": ("3", "email_concurrency", 3),
    "WEBHOOKS_EMAIL_ADDRESS_PER_HOUR": ("4", "email_address_per_hour", 4),
    "WEBHOOKS_EMAIL_ADDRESS_PER_DAY": ("0", "email_address_per_day", 0),
    "WEBHOOKS_SECRET_KEY": ("current-key", "secret_key", "current-key"),
    "WEBHOOKS_PREVIOUS_SECRET_KEYS": (
        " old-1 , old-2,,",
        "previous_secret_keys",
        ("old-1", "old-2"),
    ),
    "WEBHOOKS_MAX_PAYLOAD_BYTES": ("2048", "max_payload_bytes", 2048),
    "WEBHOOKS_WORKER_CONCURRENCY": ("8", "worker_concurrency", 8),
    "WEBHOOKS_POLL_INTERVAL_SECONDS": ("0.25", "poll_interval_seconds", 0.25),
    "WEBHOOKS_SLOW_ATTEMPT_SECONDS": ("1.5", "slow_attempt_seconds", 1.5),
    "WEBHOOKS_STALLED_AFTER_SECONDS": ("120", "stalled_after_seconds", 120.0),
    "WEBHOOKS_ALLOWED_NETWORKS": (
        "10.1.0.0/16, fd00::/8",
        "allowed_networks",
        (ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("fd00::/8")),
    ),
    "WEBHOOKS_DATA_DIR": ("/var/lib/webhooks", "data_dir", "/var/lib/webhooks"),
    "WEBHOOKS_DB_POOL_MAX_SIZE": ("25", "db_pool_max_size", 25),
    "WEBHOOKS_RATE_LIMIT_PER_SECOND": ("12.5", "rate_limit_per_second", 12.5),
    "WEBHOOKS_RATE_LIMIT_BURST": ("40", "rate_limit_burst", 40),
    "WEBHOOKS_RETENTION_DAYS": ("90", "retention_days", 90),
    "WEBHOOKS_DISABLE_AFTER_FAILING_SECONDS": ("3600", "disable_after_failing_seconds", 3600.0),
    "WEBHOOKS_MAX_REQUEST_BYTES": ("65536", "max_request_bytes", 65536),
    "WEBHOOKS_BODY_TIMEOUT_SECONDS": ("12.5", "body_timeout_seconds", 12.5),
    "WEBHOOKS_MAX_QUERY_COST": ("5000", "max_query_cost", 5000),
    "WEBHOOKS_RATE_LIMIT_UNAUTHENTICATED_PER_SECOND": (
        "0.5",
        "rate_limit_unauthenticated_per_second",
        0.5,
    ),
    "WEBHOOKS_RATE_LIMIT_UNAUTHENTICATED_BURST": ("5", "rate_limit_unauthenticated_burst", 5),
    "WEBHOOKS_TRUSTED_PROXIES": (
        "10.0.0.7, 192.168.0.0/24,::1",
        "trusted_proxies",
        ("10.0.0.7/32", "192.168.0.0/24", "::1/128"),
    ),
    "WEBHOOKS_WS_KEY_CHECK_SECONDS": ("2", "ws_key_check_seconds", 2.0),
    "WEBHOOKS_WS_MAX_LIFETIME_SECONDS": ("600", "ws_max_lifetime_seconds", 600.0),
    "WEBHOOKS_DB_CONNECT_TIMEOUT_SECONDS": ("3", "db_connect_timeout_seconds", 3),
    "WEBHOOKS_DB_DEAD_AFTER_SECONDS": ("20", "db_dead_after_seconds", 20),
    "WEBHOOKS_DB_STATEMENT_TIMEOUT_SECONDS": ("0", "db_statement_timeout_seconds", 0.0),
    "WEBHOOKS_DB_POOL_TIMEOUT_SECONDS": ("2.5", "db_pool_timeout_seconds", 2.5),
    "WEBHOOKS_FAST_EXECUTION": ("off", "fast_execution", False),
    "WEBHOOKS_PUBLIC_URL": (
        "https://hooks.example.com/",
        "public_url",
        "https://hooks.example.com",
    ),
    "WEBHOOKS_PORTAL_LINK_MAX_SECONDS": ("600", "portal_link_max_seconds", 600),
    "WEBHOOKS_PORTAL_SESSION_SECONDS": ("3600", "portal_session_seconds", 3600),
    "WEBHOOKS_SEND_TRACEPARENT": ("off", "send_traceparent", False),
}


def test_defaults_without_any_variable() -> None:
    # Given an empty environment
    settings = Settings.from_env({})

    # Then every field has its documented default
    assert settings == Settings()
    assert settings.database_url is None
    assert settings.env == "development"
    assert settings.is_production is False
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.retry_interval_seconds == 360.0
    assert settings.max_attempts == 10
    assert settings.request_timeout_seconds == 15.0
    assert settings.smtp_url is None
    assert settings.email_window_seconds == 300.0
    assert settings.secret_key is None
    assert settings.previous_secret_keys == ()
    assert settings.max_payload_bytes == 256 * 1024
    assert settings.worker_concurrency == 50
    assert settings.allowed_networks == ()
    assert settings.data_dir == ".webhooks"


def test_every_field_has_a_variable_in_this_test() -> None:
    # A new setting without a WEBHOOKS_ variable (or without a test of it) fails here.
    covered = {field for _, field, _ in EVERY_VARIABLE.values()}

    assert covered == {field.name for field in dataclasses.fields(Settings)}


def test_this_test_names_each_declared_variable() -> None:
    assert list(EVERY_VARIABLE) == [declared.variables[0] for declared in declarations()]


def test_every_variable_is_parsed_into_its_field() -> None:
    # Given every variable set
    environ = {name: raw for name, (raw, _, _) in EVERY_VARIABLE.items()}

    # When the settings are read
    settings = Settings.from_env(environ)

    # Then each field holds the parsed value
    for name, (_, field, expected) in EVERY_VARIABLE.items():
        assert getattr(settings, field) == expected, name
    assert settings.is_production is True


def test_blank_values_count_as_unset() -> None:
    settings = Settings.from_env({"WEBHOOKS_PORT": "  ", "WEBHOOKS_HOST": ""})

    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_database_url_falls_back_to_plain_database_url() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgres://heroku@db/app"})

    assert settings.database_url == "postgres://heroku@db/app"


def test_webhooks_database_url_wins_over_database_url() -> None:
    settings = Settings.from_env(
        {
            "WEBHOOKS_DATABASE_URL": "postgresql://ours@db/webhooks",
            "DATABASE_URL": "postgresql://theirs@db/other",
        }
    )

    assert settings.database_url == "postgresql://ours@db/webhooks"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("WEBHOOKS_DATABASE_URL", "mysql://db/app", "postgresql://"),
        ("DATABASE_URL", "db.internal:5432", "postgresql://"),
        ("WEBHOOKS_ENV", "staging", "development, production"),
        ("WEBHOOKS_PORT", "eighty", "a whole number"),
        ("WEBHOOKS_PORT", "0", "at least 1"),
        ("WEBHOOKS_PORT", "70000", "at most 65535"),
        ("WEBHOOKS_RETRY_INTERVAL_SECONDS", "-1", "at least 0"),
        ("WEBHOOKS_MAX_ATTEMPTS", "2.5", "a whole number"),
        ("WEBHOOKS_MAX_ATTEMPTS", "0", "at least 1"),
        ("WEBHOOKS_MAX_ATTEMPTS", "101", "at most 100"),
        ("WEBHOOKS_REQUEST_TIMEOUT_SECONDS", "soon", "a number"),
        ("WEBHOOKS_REQUEST_TIMEOUT_SECONDS", "301", "at most 300"),
        ("WEBHOOKS_SMTP_URL", "mail.example.com:25", "smtp://"),
        ("WEBHOOKS_SMTP_URL", "http://mail.example.com", "smtp://"),
        ("WEBHOOKS_EMAIL_WINDOW_SECONDS", "-5", "at least 0"),
        ("WEBHOOKS_MAX_PAYLOAD_BYTES", "100", "at least 1024"),
        ("WEBHOOKS_WORKER_CONCURRENCY", "0", "at least 1"),
        ("WEBHOOKS_POLL_INTERVAL_SECONDS", "0.01", "at least 0.05"),
        ("WEBHOOKS_SLOW_ATTEMPT_SECONDS", "0", "at least 0.01"),
        ("WEBHOOKS_STALLED_AFTER_SECONDS", "1", "at least 5"),
        ("WEBHOOKS_ALLOWED_NETWORKS", "10.0.0.0/8, intranet", "'intranet'"),
        ("WEBHOOKS_DB_POOL_MAX_SIZE", "1", "at least 2"),
        ("WEBHOOKS_RATE_LIMIT_PER_SECOND", "-1", "at least 0"),
        ("WEBHOOKS_RATE_LIMIT_BURST", "0", "at least 1"),
        ("WEBHOOKS_RETENTION_DAYS", "0", "at least 1"),
        ("WEBHOOKS_DISABLE_AFTER_FAILING_SECONDS", "-1", "at least 0"),
        ("WEBHOOKS_MAX_REQUEST_BYTES", "1000", "at least 4096"),
        ("WEBHOOKS_BODY_TIMEOUT_SECONDS", "0", "at least 0.1"),
        ("WEBHOOKS_MAX_QUERY_COST", "10", "at least 100"),
        ("WEBHOOKS_RATE_LIMIT_UNAUTHENTICATED_BURST", "0", "at least 1"),
        ("WEBHOOKS_TRUSTED_PROXIES", "10.0.0.1, proxy.internal", "'proxy.internal'"),
        ("WEBHOOKS_WS_KEY_CHECK_SECONDS", "0", "at least 0.1"),
        ("WEBHOOKS_WS_KEY_CHECK_SECONDS", "61", "at most 60"),
        ("WEBHOOKS_WS_MAX_LIFETIME_SECONDS", "0", "at least 1"),
        ("WEBHOOKS_FAST_EXECUTION", "maybe", "one of 1, true, on, 0, false, off"),
        ("WEBHOOKS_WS_KEY_CHECK_SECONDS", "nan", "must be a number; got 'nan'"),
        ("WEBHOOKS_RETRY_INTERVAL_SECONDS", "inf", "must be a number; got 'inf'"),
    ],
)
def test_a_bad_value_names_the_variable(variable: str, value: str, expected: str) -> None:
    # When a variable holds a value the service cannot use
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({variable: value})

    # Then the error names the variable (so an operator knows what to fix) and the expectation
    message = str(raised.value)
    assert variable in message
    assert expected in message


def test_a_bad_number_error_quotes_the_value() -> None:
    with pytest.raises(SettingsError, match=r"WEBHOOKS_PORT must be a whole number; got 'x1'"):
        Settings.from_env({"WEBHOOKS_PORT": "x1"})


def test_the_smtp_url_error_does_not_echo_credentials() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"WEBHOOKS_SMTP_URL": "ftp://user:hunter2@mail"})

    assert "hunter2" not in str(raised.value)


def test_production_requires_a_secret_key() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"WEBHOOKS_ENV": "production"})

    assert "WEBHOOKS_SECRET_KEY" in str(raised.value)
    assert "WEBHOOKS_ENV=production" in str(raised.value)


def test_production_with_a_secret_key_loads() -> None:
    settings = Settings.from_env({"WEBHOOKS_ENV": "production", "WEBHOOKS_SECRET_KEY": "k"})

    assert settings.is_production is True
    assert settings.secret_key == "k"


PRODUCTION = {"WEBHOOKS_ENV": "production", "WEBHOOKS_SECRET_KEY": "k"}


@pytest.mark.parametrize(
    "url",
    [
        "smtp://mailer:hunter2@smtp.example.com:587",
        "smtp://mailer:hunter2@smtp.example.com:587?starttls=0",
        "smtp://mailer@smtp.example.com",
    ],
)
def test_production_refuses_smtp_credentials_that_could_travel_in_clear(url: str) -> None:
    # Given production and an SMTP URL with credentials but no required TLS
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**PRODUCTION, "WEBHOOKS_SMTP_URL": url})

    # Then start-up stops, says how to fix it, and does not repeat the password
    message = str(raised.value)
    assert "WEBHOOKS_SMTP_URL" in message and "?starttls=1" in message
    assert "smtp.example.com" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    "url",
    [
        "smtp://mailer:hunter2@smtp.example.com:587?starttls=1",
        "smtps://mailer:hunter2@smtp.example.com",
        "smtp://mailer:hunter2@127.0.0.1:25",
        "smtp://mailer:hunter2@localhost:25",
        "smtp://mailer:hunter2@[::1]:25",
        "smtp://smtp.example.com:25",
    ],
)
def test_production_accepts_smtp_credentials_under_tls_or_on_loopback(url: str) -> None:
    assert Settings.from_env({**PRODUCTION, "WEBHOOKS_SMTP_URL": url}).smtp_url == url


def test_development_accepts_smtp_credentials_without_tls() -> None:
    url = "smtp://mailer:hunter2@smtp.example.com:587"

    assert Settings.from_env({"WEBHOOKS_SMTP_URL": url}).smtp_url == url


def test_development_needs_no_secret_key() -> None:
    assert Settings.from_env({"WEBHOOKS_ENV": "development"}).secret_key is None


def test_allowed_networks_accept_hosts_ipv6_and_loose_separators() -> None:
    # Given a list with spaces, an empty item, a host address and a non-strict CIDR
    raw = " 127.0.0.0/8 ,, 192.168.1.7, 10.1.2.3/16 ,::1 "

    # When it is read
    networks = Settings.from_env({"WEBHOOKS_ALLOWED_NETWORKS": raw}).allowed_networks

    # Then each becomes a network (host bits masked off), in order
    assert networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
        ipaddress.ip_network("10.1.0.0/16"),
        ipaddress.ip_network("::1/128"),
    )


def test_with_overrides_returns_a_changed_copy() -> None:
    base = Settings()

    changed = base.with_overrides(env="production", max_attempts=3)

    assert (changed.env, changed.max_attempts) == ("production", 3)
    assert (base.env, base.max_attempts) == ("development", 10)


# Defaults the README describes instead of showing the field's (None: made at run time).
DESCRIBED_DEFAULTS = {"WEBHOOKS_SECRET_KEY": "dev: generated in `.webhooks/secret_key`"}


def configuration_rows() -> list[tuple[list[str], str]]:
    """(the variables, the Default cell) of each row of README's configuration table."""
    section = README.read_text(encoding="utf-8").split("\n## Configuration\n", 1)[1]
    table = section.split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    cells = [row.strip("|").split(" | ") for row in rows]
    return [(re.findall(r"`([A-Z_]+)`", cell[0]), cell[1].strip()) for cell in cells]


def shown(default: object) -> str:
    """A default as the README writes it."""
    if default is None or default == ():
        return "none"
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def test_the_readme_lists_exactly_the_declared_variables() -> None:
    listed = [variable for variables, _ in configuration_rows() for variable in variables]
    declared = [variable for setting in declarations() for variable in setting.variables]

    assert sorted(listed) == sorted(declared)


def test_the_readme_gives_each_variable_its_declared_default() -> None:
    settings = {setting.variables[0]: setting for setting in declarations()}
    for variables, cell in configuration_rows():
        # A row may list several settings (`A`, `B` | `1`, `2`); an alias adds none.
        names = [variable for variable in variables if variable in settings]
        if len(names) == 1 and names[0] in DESCRIBED_DEFAULTS:
            assert cell == DESCRIBED_DEFAULTS[names[0]]
            assert settings[names[0]].default is None
            continue
        documented = ["none"] if cell.startswith("none") else cell_values(cell)
        assert documented == [shown(settings[name].default) for name in names], variables


def cell_values(cell: str) -> list[str]:
    """The leading `a`, `b` of a Default cell, without any note after them."""
    match = re.match(r"`[^`]*`(?:, `[^`]*`)*", cell)
    assert match is not None, cell
    return re.findall(r"`([^`]*)`", match.group(0))


def test_the_public_origin_is_the_public_url_else_in_development_the_listening_address() -> None:
    assert Settings(public_url="https://hooks.example.com").public_origin == (
        "https://hooks.example.com"
    )
    assert Settings(host="127.0.0.1", port=8001).public_origin == "http://127.0.0.1:8001"
    assert Settings(host="0.0.0.0", port=8001).public_origin == "http://127.0.0.1:8001"
    # Production never guesses: a link built from a Host header would point anywhere.
    assert Settings(env="production", secret_key="k").public_origin is None


@pytest.mark.parametrize(
    ("raw", "origin"),
    [
        ("HTTPS://Hooks.Example.COM", "https://hooks.example.com"),
        ("https://hooks.example.com:443/", "https://hooks.example.com"),
        ("http://127.0.0.1:80", "http://127.0.0.1"),
        ("https://hooks.example.com:8443", "https://hooks.example.com:8443"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_the_public_url_is_written_as_a_browser_writes_its_origin(raw: str, origin: str) -> None:
    # The portal's websocket is accepted only from exactly this origin: a browser sends
    # the host in lower case and no default port, so anything else would refuse them all.
    assert Settings.from_env({"WEBHOOKS_PUBLIC_URL": raw}).public_origin == origin


@pytest.mark.parametrize(
    "raw",
    [
        "https://hooks.example.com:99999",
        "https://hooks.example.com:x",
        "https://hooks.example.com:0",
        "ftp://hooks.example.com",
        "https://hooks.example.com/portal",
        "https://",
        "hooks.example.com",
        "https://hooks.example.com?x=1",
        "https://user@hooks.example.com",
    ],
)
def test_a_public_url_must_be_an_origin(raw: str) -> None:
    with pytest.raises(SettingsError, match="WEBHOOKS_PUBLIC_URL"):
        Settings.from_env({"WEBHOOKS_PUBLIC_URL": raw})


@pytest.mark.parametrize(
    ("raw", "accepted"),
    [
        ("http://hooks.example.com", False),
        ("http://10.0.0.5:8000", False),
        ("https://hooks.example.com", True),
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000", True),
    ],
)
def test_production_takes_a_public_url_over_http_only_on_this_machine(
    raw: str, accepted: bool
) -> None:
    # Portal links carry a token and the session cookie is Secure: over plain http the
    # token travels in clear and browsers drop the cookie, so every open would end on
    # "session ended". Loopback stays (browsers treat it as secure; a local proxy).
    environ = {"WEBHOOKS_ENV": "production", "WEBHOOKS_SECRET_KEY": "k", "WEBHOOKS_PUBLIC_URL": raw}
    if accepted:
        assert Settings.from_env(environ).public_origin == raw
    else:
        with pytest.raises(SettingsError, match="WEBHOOKS_PUBLIC_URL must be https://"):
            Settings.from_env(environ)
