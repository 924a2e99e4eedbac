"""The ``webhooks`` command line, run as a real subprocess against a real database."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.api_keys import prefix_of
from app.secret_box import generate_key
from tests.acceptance.processes import (
    WEBHOOKS,
    Api,
    Processes,
    empty_database,
    environment,
    error_codes,
    run_cli,
    seed_tenants,
    service_environment,
)
from tests.database import PostgresServer

VIEWER = "{ viewer { role company { id name } } }"


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path / "logs") as started:
        yield started


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment of a migrated test database."""
    return service_environment(database_url, tmp_path / "data", generate_key())


def test_migrate_applies_everything_once(postgres_server: PostgresServer, tmp_path: Path) -> None:
    with empty_database(postgres_server) as url:
        env = service_environment(url, tmp_path / "data", generate_key())

        first = run_cli("migrate", "--json", env=env).json()
        second = run_cli("migrate", "--json", env=env).json()

    assert set(first) == {"applied"}
    assert "0001_procrastinate.sql" in first["applied"]
    assert "0002_core.sql" in first["applied"]
    assert second == {"applied": []}


CONCURRENT_MIGRATES = 3
MIGRATE_TRIALS = 3


def test_concurrent_migrates_on_a_fresh_database_all_succeed_and_apply_each_migration_once(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    for trial in range(MIGRATE_TRIALS):
        with empty_database(postgres_server) as url:
            # given a database nothing was ever applied to
            env = service_environment(url, tmp_path / f"data-{trial}", generate_key())

            # when three deploys run `webhooks migrate` at the same moment
            runs = [
                subprocess.Popen(
                    [WEBHOOKS, "migrate", "--json"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(CONCURRENT_MIGRATES)
            ]
            outputs = [run.communicate(timeout=60) for run in runs]

        # then every one exits 0, and between them each migration was applied exactly once
        for run, (_, stderr) in zip(runs, outputs, strict=True):
            assert run.returncode == 0, f"trial {trial}: exited {run.returncode}\n{stderr}"
        applied = [name for stdout, _ in outputs for name in json.loads(stdout)["applied"]]
        assert "0002_core.sql" in applied
        assert sorted(applied) == sorted(set(applied)), f"trial {trial}: {applied}"


def test_company_create_prints_exactly_id_and_name_and_refuses_a_taken_id(
    env: dict[str, str],
) -> None:
    created = run_cli("company", "create", "Acme Realty", "--id", "acme", "--json", env=env)
    generated = run_cli("company", "create", "Zenith Homes", "--json", env=env)
    again = run_cli("company", "create", "Other", "--id", "acme", "--json", env=env)

    assert created.json() == {"id": "acme", "name": "Acme Realty"}
    assert set(generated.json()) == {"id", "name"}
    assert generated.json()["name"] == "Zenith Homes"
    assert again.returncode != 0, again.describe()
    assert again.stdout == ""
    assert "'acme' already exists" in again.stderr, again.describe()
    assert "Traceback" not in again.stderr


def test_key_create_and_list(env: dict[str, str]) -> None:
    run_cli("company", "create", "Acme Realty", "--id", "acme", "--json", env=env).json()

    company_key = run_cli("key", "create", "--company", "acme", "--json", env=env).json()
    publisher_key = run_cli("key", "create", "--publisher", "--json", env=env).json()
    unknown = run_cli("key", "create", "--company", "unknown", "--json", env=env)
    human = run_cli("key", "list", "--company", "acme", env=env)
    as_json = run_cli("key", "list", "--company", "acme", "--json", env=env)

    # create: the key once, with what it is for
    assert set(company_key) == {"key", "prefix", "role", "companyId"}
    assert company_key["role"] == "COMPANY"
    assert company_key["companyId"] == "acme"
    assert company_key["key"].startswith(company_key["prefix"] + "_")
    assert set(publisher_key) == {"key", "prefix", "role", "companyId"}
    assert publisher_key["role"] == "PUBLISHER"
    assert publisher_key["companyId"] is None
    # an unknown company: a clear message, nothing created
    assert unknown.returncode != 0, unknown.describe()
    assert unknown.stdout == ""
    assert "no company with id 'unknown'" in unknown.stderr, unknown.describe()
    # list: the company's prefix, never the key
    assert human.returncode == 0, human.describe()
    assert company_key["prefix"] in human.stdout
    assert publisher_key["prefix"] not in human.stdout
    assert company_key["key"] not in human.stdout + human.stderr
    [listed] = as_json.json()["keys"]
    assert listed["prefix"] == company_key["prefix"]
    assert listed["companyId"] == "acme"
    assert listed["revokedAt"] is None
    secret_part = company_key["key"][len(company_key["prefix"]) + 1 :]
    assert secret_part not in as_json.stdout + as_json.stderr


def test_revoked_key_is_refused_by_the_api(
    database_url: str, env: dict[str, str], processes: Processes
) -> None:
    tenants = seed_tenants(database_url)
    prefix = prefix_of(tenants.key_a)
    assert prefix is not None
    server = processes.serve(env)
    with Api(server.url("")) as api:
        assert api.data(VIEWER, key=tenants.key_a)["viewer"] == {
            "role": "COMPANY",
            "company": {"id": "company-a", "name": "Company A"},
        }

        revoked = run_cli("key", "revoke", prefix, "--json", env=env).json()
        refused = api.post(VIEWER, key=tenants.key_a)
        other = api.data(VIEWER, key=tenants.key_b)

    assert revoked["prefix"] == prefix
    assert revoked["revokedAt"] is not None
    assert error_codes(refused) == ["UNAUTHENTICATED"], refused
    assert refused.get("data") is None
    assert other["viewer"]["company"]["id"] == "company-b"


def test_key_revoke_of_an_unknown_prefix_fails_clearly(env: dict[str, str]) -> None:
    result = run_cli("key", "revoke", "pwk_00000000", "--json", env=env)

    assert result.returncode == 1, result.describe()
    assert "no API key with prefix 'pwk_00000000'" in result.stderr


# Settings are checked before anything connects: no real database is needed.
UNUSED_DATABASE = "postgresql://postgres@127.0.0.1:1/nothing"


@pytest.mark.parametrize("command", [["migrate", "--json"], ["serve"], ["worker"]])
def test_a_bad_setting_stops_any_command_with_exit_2(command: list[str], tmp_path: Path) -> None:
    env = service_environment(
        UNUSED_DATABASE, tmp_path / "data", generate_key(), WEBHOOKS_MAX_ATTEMPTS="abc"
    )

    result = run_cli(*command, env=env, timeout=15)

    assert result.returncode == 2, result.describe()
    assert "WEBHOOKS_MAX_ATTEMPTS" in result.stderr
    assert "'abc'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["serve"], ["worker"]])
def test_production_without_a_secret_key_exits_2_naming_it(
    command: list[str], tmp_path: Path
) -> None:
    env = environment(
        WEBHOOKS_ENV="production",
        WEBHOOKS_DATABASE_URL=UNUSED_DATABASE,
        WEBHOOKS_DATA_DIR=str(tmp_path / "data"),
    )

    result = run_cli(*command, env=env, timeout=15)

    assert result.returncode == 2, result.describe()
    assert "WEBHOOKS_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_recommended_secret_key_command_works_where_the_key_is_missing(
    database_url: str, tmp_path: Path
) -> None:
    production = environment(
        WEBHOOKS_ENV="production",
        WEBHOOKS_DATABASE_URL=database_url,
        WEBHOOKS_DATA_DIR=str(tmp_path / "data"),
    )

    generated = run_cli("secret-key", "generate", env=production)
    with_key = run_cli(
        "key", "list", "--json", env={**production, "WEBHOOKS_SECRET_KEY": generated.stdout}
    )

    assert generated.returncode == 0, generated.describe()
    assert with_key.json() == {"keys": []}


def test_commands_needing_a_database_say_which_setting_is_missing(tmp_path: Path) -> None:
    env = environment(WEBHOOKS_DATA_DIR=str(tmp_path / "data"))

    result = run_cli("company", "list", "--json", env=env)

    assert result.returncode == 2, result.describe()
    assert "WEBHOOKS_DATABASE_URL" in result.stderr


def test_a_command_on_an_unmigrated_database_says_to_migrate(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    with empty_database(postgres_server) as url:
        env = service_environment(url, tmp_path / "data", generate_key())
        result = run_cli("company", "create", "Acme", "--json", env=env)

    assert result.returncode == 1
    assert "run `webhooks migrate`" in result.stderr
    assert "Traceback" not in result.stderr
