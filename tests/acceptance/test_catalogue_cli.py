"""``webhooks webhook-type put/list/show``: an operator manages the catalogue, as a real
subprocess against a real database, and a running API sees each update at once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.core.operator_events import OPERATOR_WEBHOOKS
from app.core.secret_box import generate_key
from tests.acceptance.processes import (
    PUBLISH_EVENT,
    Api,
    CliResult,
    Processes,
    run_cli,
    seed_tenants,
    service_environment,
)
from tests.catalogue import (
    EXAMPLES,
    ORDER_STATUS_DESCRIPTION,
    ORDER_STATUS_NAME,
    ORDER_STATUS_SAMPLE_FILE,
    ORDER_STATUS_SCHEMA_FILE,
    order_status_sample,
    order_status_schema,
)
from tests.payloads import order_status_payload
from tests.unit.test_schema_expansion import doubling


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path / "logs") as started:
        yield started


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment of a migrated test database."""
    return service_environment(database_url, tmp_path / "data", generate_key())


def put_order_status(
    env: dict[str, str], schema: Path = ORDER_STATUS_SCHEMA_FILE, *extra: str
) -> CliResult:
    return run_cli(
        "webhook-type",
        "put",
        "ORDER_STATUS",
        "--name",
        ORDER_STATUS_NAME,
        "--description",
        ORDER_STATUS_DESCRIPTION,
        "--schema",
        str(schema),
        "--sample",
        str(ORDER_STATUS_SAMPLE_FILE),
        "--subject-pointer",
        "/order_id",
        "--status-pointer",
        "/order_status",
        *extra,
        env=env,
    )


def listed(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    found = run_cli("webhook-type", "list", "--json", env=env).json()
    return {item["key"]: item for item in found["webhookTypes"]}


def write_json(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_putting_the_example_files_on_a_migrated_database_changes_nothing(
    env: dict[str, str],
) -> None:
    # Given a migrated database (ORDER_STATUS as migration 0013 wrote it)
    before = listed(env)["ORDER_STATUS"]

    # When the operator puts the example files
    result = put_order_status(env, ORDER_STATUS_SCHEMA_FILE, "--json")

    # Then nothing changed, not even the version running processes cache by: the
    # migration and the example files agree
    assert result.json()["outcome"] == "unchanged", result.describe()
    assert listed(env)["ORDER_STATUS"] == before
    shown_schema = run_cli("webhook-type", "show", "ORDER_STATUS", "--schema", env=env)
    shown_sample = run_cli("webhook-type", "show", "ORDER_STATUS", "--sample", env=env)
    assert json.loads(shown_schema.stdout) == order_status_schema()
    assert json.loads(shown_sample.stdout) == order_status_sample()


@pytest.mark.parametrize("key", sorted(OPERATOR_WEBHOOKS))
def test_putting_the_operator_event_files_changes_nothing(env: dict[str, str], key: str) -> None:
    # Given a migrated database (the operator events as migration 0021 wrote them)
    before = listed(env)[key]
    shown = run_cli("webhook-type", "show", key, env=env).json()
    schema_file = EXAMPLES / f"{key.lower()}.schema.json"
    sample_file = EXAMPLES / f"{key.lower()}.sample.json"

    # When the operator puts the example files, with the type's name, text and pointers
    result = run_cli(
        "webhook-type",
        "put",
        key,
        "--name",
        shown["name"],
        "--description",
        shown["description"],
        "--schema",
        str(schema_file),
        "--sample",
        str(sample_file),
        "--subject-pointer",
        "/subscription_id",
        *(["--status-pointer", shown["statusPointer"]] if shown["statusPointer"] else []),
        "--json",
        env=env,
    )

    # Then nothing changed: the migration and the example files agree
    assert result.json()["outcome"] == "unchanged", result.describe()
    assert listed(env)[key] == before
    assert shown["schema"] == json.loads(schema_file.read_text(encoding="utf-8"))
    assert shown["sample"] == json.loads(sample_file.read_text(encoding="utf-8"))


def test_put_creates_then_updates_and_list_and_show_print_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Given a schema and a sample of a new type
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["order_id", "media"],
        "properties": {
            "order_id": {"type": "integer"},
            "media": {"oneOf": [{"const": "photos", "description": "Still images."}]},
        },
    }
    schema_file = write_json(tmp_path / "media.schema.json", schema)
    sample_file = write_json(tmp_path / "media.sample.json", {"order_id": 7, "media": "photos"})
    put = [
        "webhook-type",
        "put",
        "MEDIA_READY",
        "--name",
        "Media Ready",
        "--description",
        "The media of an order are ready.",
        "--schema",
        str(schema_file),
        "--sample",
        str(sample_file),
        "--subject-pointer",
        "/order_id",
        "--status-pointer",
        "/media",
    ]

    # When the operator puts it, then puts it again with another sample, then once more
    created = run_cli(*put, env=env)
    write_json(sample_file, {"order_id": 8, "media": "photos"})
    updated = run_cli(*put, env=env)
    unchanged = run_cli(*put, env=env)

    # Then it was created, updated, and left alone, each said in one line
    assert created.returncode == 0, created.describe()
    assert created.stdout == (
        "created MEDIA_READY (Media Ready): subject /order_id, status /media (1 values)\n"
    )
    assert updated.stdout.startswith("updated MEDIA_READY"), updated.describe()
    assert unchanged.stdout.startswith("unchanged MEDIA_READY"), unchanged.describe()
    # ...the list has it, next to ORDER_STATUS and the operator events
    assert set(listed(env)) == {"MEDIA_READY", "ORDER_STATUS", *OPERATOR_WEBHOOKS}
    human = run_cli("webhook-type", "list", env=env)
    assert [line.split("\t")[:2] for line in human.stdout.splitlines()] == [
        ["DELIVERY_FAILED", "Delivery Failed"],
        ["MEDIA_READY", "Media Ready"],
        ["ORDER_STATUS", "Order Status"],
        ["SUBSCRIPTION_DEACTIVATED", "Subscription Deactivated"],
        ["SUBSCRIPTION_RECOVERED", "Subscription Recovered"],
    ]
    # ...and show prints all of it as JSON
    shown = json.loads(run_cli("webhook-type", "show", "MEDIA_READY", env=env).stdout)
    assert shown["schema"] == schema
    assert shown["sample"] == {"order_id": 8, "media": "photos"}
    assert shown["statuses"] == [{"value": "photos", "description": "Still images."}]
    assert (shown["subjectPointer"], shown["statusPointer"]) == ("/order_id", "/media")


def test_show_of_an_unknown_key_says_so(env: dict[str, str]) -> None:
    result = run_cli("webhook-type", "show", "ORDER_SHIPPED", env=env)

    assert result.returncode == 1
    assert "no webhook type 'ORDER_SHIPPED'" in result.stderr


BAD_SCHEMAS: dict[str, tuple[str, str]] = {
    # case -> (schema file content, what the error says)
    "bad-json": (
        '{"type": "object",\n  "properties": {,}}',
        "--schema {file}: not JSON: Expecting property name enclosed in double quotes at "
        "line 2, column 18",
    ),
    "not-a-schema": (
        '{"type": "object", "properties": {"order_id": {"type": "int"}}}',
        "--schema {file}: not a valid JSON Schema (draft 2020-12) at /properties/order_id/type:",
    ),
    "other-draft": (
        '{"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}',
        '--schema {file}: /$schema: $schema "http://json-schema.org/draft-07/schema#" is not '
        "draft 2020-12",
    ),
    "remote-ref": (
        '{"type": "object", "properties": {"order_id": {"$ref": "https://example.com/id"}}}',
        '--schema {file}: /properties/order_id/$ref: $ref "https://example.com/id" is not local',
    ),
    "root-not-object": ('{"type": "array"}', '--schema {file}: the root must say "type": "object"'),
    "nan": ('{"type": "object", "maximum": NaN}', "--schema {file}: not JSON: NaN is not"),
    # Checking the sample against it would not end: each definition names the next twice.
    "reference-bomb": (
        json.dumps(doubling(40)),
        "--schema {file}: the schema expands to more than 100,000 subschemas",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SCHEMAS))
def test_a_bad_schema_file_is_refused_with_what_and_where_and_exit_2(
    env: dict[str, str], tmp_path: Path, case: str
) -> None:
    content, expected = BAD_SCHEMAS[case]
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(content, encoding="utf-8")
    before = listed(env)

    result = put_order_status(env, schema_file)

    assert result.returncode == 2, result.describe()
    assert expected.format(file=schema_file) in result.stderr, result.describe()
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert listed(env) == before


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"key": "order-status"}, "KEY: A key is an upper-case letter"),
        ({"sample": "missing.json"}, "--sample missing.json: cannot read it: No such file"),
        (
            {"sample_content": {**order_status_payload(), "order_status": "shipped"}},
            "--sample {sample}: does not match the schema: /order_status: expected one of "
            '"ordered", ',
        ),
        ({"subject": "/order"}, "--subject-pointer: /order: finds nothing in the sample."),
        ({"status": "order_status"}, '--status-pointer: "order_status" is not a JSON pointer'),
    ],
)
def test_a_bad_definition_is_refused_with_what_and_where_and_exit_2(
    env: dict[str, str], tmp_path: Path, changes: dict[str, Any], expected: str
) -> None:
    sample = str(ORDER_STATUS_SAMPLE_FILE)
    if "sample_content" in changes:
        sample = str(write_json(tmp_path / "sample.json", changes["sample_content"]))
    sample = changes.get("sample", sample)
    before = listed(env)

    result = run_cli(
        "webhook-type",
        "put",
        changes.get("key", "ORDER_STATUS"),
        "--name",
        ORDER_STATUS_NAME,
        "--description",
        ORDER_STATUS_DESCRIPTION,
        "--schema",
        str(ORDER_STATUS_SCHEMA_FILE),
        "--sample",
        sample,
        "--subject-pointer",
        changes.get("subject", "/order_id"),
        "--status-pointer",
        changes.get("status", "/order_status"),
        env=env,
        cwd=tmp_path,
    )

    assert result.returncode == 2, result.describe()
    assert expected.format(sample=sample) in result.stderr, result.describe()
    assert "Traceback" not in result.stderr
    assert listed(env) == before


def test_a_running_api_sees_an_update_without_a_restart(
    database_url: str, env: dict[str, str], processes: Processes, tmp_path: Path
) -> None:
    # Given a running API, and the order system about to publish a status the catalogue
    # does not know yet
    tenants = seed_tenants(database_url)
    server = processes.serve(env)
    shipped = order_status_payload(order_status="shipped")

    def publish(api: Api) -> list[dict[str, Any]]:
        event_input = {"companyId": tenants.a, "webhook": "ORDER_STATUS", "payload": shipped}
        data = api.data(PUBLISH_EVENT, {"input": event_input}, key=tenants.publisher)
        errors: list[dict[str, Any]] = data["publishEvent"]["userErrors"]
        return errors

    schema = order_status_schema()
    schema["properties"]["order_status"]["oneOf"].append(
        {"const": "shipped", "description": "Prints are in the mail."}
    )
    with_shipped = write_json(tmp_path / "with-shipped.schema.json", schema)

    with Api(server.url("")) as api:
        refused = publish(api)

        # When the operator adds the status, and later takes it back out
        added = put_order_status(env, with_shipped)
        accepted = publish(api)
        removed = put_order_status(env)
        refused_again = publish(api)

    # Then the same API process follows each update at once
    assert [error["field"] for error in refused] == [["input", "payload", "order_status"]]
    assert added.stdout.startswith("updated ORDER_STATUS"), added.describe()
    assert accepted == []
    assert removed.stdout.startswith("updated ORDER_STATUS"), removed.describe()
    assert refused_again == refused
