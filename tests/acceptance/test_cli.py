"""The ``webhooks`` command line, run as a real subprocess against a real database."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.secret_box import generate_key
from app.delivery.failure_email import (
    FailedDelivery,
    FailureNotice,
    notice_id,
    render_failure_email,
)
from app.delivery.mailer import OutboxMailer
from app.domain.api_keys import prefix_of
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


def test_production_with_an_smtp_password_that_could_go_in_clear_exits_2(
    tmp_path: Path,
) -> None:
    env = environment(
        WEBHOOKS_ENV="production",
        WEBHOOKS_DATABASE_URL=UNUSED_DATABASE,
        WEBHOOKS_DATA_DIR=str(tmp_path / "data"),
        WEBHOOKS_SECRET_KEY=generate_key(),
        WEBHOOKS_SMTP_URL="smtp://mailer:s3cret-Pw-77@smtp.example.com:587",
    )

    result = run_cli("worker", env=env, timeout=15)

    assert result.returncode == 2, result.describe()
    assert "WEBHOOKS_SMTP_URL" in result.stderr and "?starttls=1" in result.stderr
    assert "s3cret-Pw-77" not in result.stdout + result.stderr
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


# -- webhooks emails: the development outbox -------------------------------------------------


def keep_failure_email(data_dir: Path, to: str, subject_of_order: str) -> str:
    """Write one rendered failure email into the outbox as `webhooks dev` would; returns
    its notice id."""
    notice = FailureNotice(
        to=to,
        sender="PlanOmatic Webhooks <webhooks@planomatic.invalid>",
        subscription_id="5b0f3d4e-0000-4000-8000-000000000001",
        webhook_key="ORDER_STATUS",
        webhook_name="Order Status",
        callback_url_masked="https://hooks.acme.example/planomatic",
        deliveries=[
            FailedDelivery(
                delivery_id=f"d-{subject_of_order}",
                webhook_id=f"msg_{subject_of_order}",
                event_id=f"e-{subject_of_order}",
                subject=subject_of_order,
                attempts=[],
            )
        ],
    )
    asyncio.run(OutboxMailer(data_dir / "outbox").send(render_failure_email(notice)))
    return notice_id(notice)


def test_emails_help_lists_the_actions(tmp_path: Path) -> None:
    result = run_cli("emails", "--help", env=environment(), cwd=tmp_path)

    assert result.returncode == 0, result.describe()
    assert "list" in result.stdout and "show" in result.stdout
    assert "outbox" in result.stdout


def test_emails_list_from_a_directory_without_an_outbox_says_where_it_looked(
    tmp_path: Path,
) -> None:
    # given no WEBHOOKS_DATA_DIR, run from a directory where `webhooks dev` never ran
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    listed = run_cli("emails", "list", env=environment(), cwd=elsewhere)
    shown = run_cli("emails", "show", "fn-0123", env=environment(), cwd=elsewhere)

    # then both fail, naming the directory they looked in and what to do about it
    for result in (listed, shown):
        assert result.returncode == 1, result.describe()
        assert result.stdout == ""
        assert f"no outbox at {elsewhere / '.webhooks' / 'outbox'}" in result.stderr
        assert "WEBHOOKS_DATA_DIR" in result.stderr
        assert "Traceback" not in result.stderr


def test_emails_list_shows_date_recipient_and_subject_and_show_takes_the_notice_id(
    tmp_path: Path,
) -> None:
    # given two failure emails in the outbox of a data directory
    data_dir = tmp_path / "data"
    first = keep_failure_email(data_dir, "ops@acme.example", "ord_1")
    second = keep_failure_email(data_dir, "alerts@zenith.example", "ord_2")
    env = environment(WEBHOOKS_DATA_DIR=str(data_dir))

    # when they are listed, and each shown by the notice id the list prints
    listed = run_cli("emails", "list", env=env, cwd=tmp_path)
    as_json = run_cli("emails", "list", "--json", env=env, cwd=tmp_path).json()
    shown = {key: run_cli("emails", "show", key, env=env, cwd=tmp_path) for key in (first, second)}
    unknown = run_cli("emails", "show", "fn-nothing-like-it", env=env, cwd=tmp_path)

    # then the list has a line per email: date, recipient, subject, id
    assert listed.returncode == 0, listed.describe()
    lines = listed.stdout.strip().splitlines()
    assert len(lines) == 2
    by_recipient = {line.split("\t")[1]: line.split("\t") for line in lines}
    assert set(by_recipient) == {"ops@acme.example", "alerts@zenith.example"}
    date, _, subject, _ = by_recipient["ops@acme.example"]
    assert date.endswith(" UTC") and date[:4].isdigit()
    assert "Order Status" in subject
    assert {email["to"] for email in as_json["emails"]} == set(by_recipient)
    assert all(email["date"] for email in as_json["emails"])
    # and each shows by its notice id, headers then text
    for key, result in shown.items():
        assert result.returncode == 0, result.describe()
        assert f"X-PlanOmatic-Notice-Id: {key}" in result.stdout
    assert "To: ops@acme.example" in shown[first].stdout
    assert "Subject:     ord_1" in shown[first].stdout
    # and an unknown id is a clear error, not a traceback
    assert unknown.returncode == 1, unknown.describe()
    assert "no email 'fn-nothing-like-it' in the outbox" in unknown.stderr
    assert "webhooks emails list" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_emails_list_of_an_empty_outbox_says_so(tmp_path: Path) -> None:
    (tmp_path / "data" / "outbox").mkdir(parents=True)

    result = run_cli(
        "emails", "list", env=environment(WEBHOOKS_DATA_DIR=str(tmp_path / "data")), cwd=tmp_path
    )

    assert result.returncode == 0, result.describe()
    assert result.stdout == ""
    assert "no emails in the outbox" in result.stderr


def test_a_reader_that_goes_away_ends_the_command_without_a_traceback() -> None:
    # Given `webhooks schema | head -0`: the pipe's reader is gone before anything is written
    process = subprocess.Popen(
        [WEBHOOKS, "schema"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()

    # Then it ends quietly, with a failure status
    with process.stderr:
        stderr = process.stderr.read().decode()
    assert process.wait(timeout=30) == 1
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr
