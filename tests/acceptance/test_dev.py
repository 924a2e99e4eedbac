"""``webhooks dev``: the zero-setup run, as a user would start it, with no database set up."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from app.run.development import EXAMPLE_RECEIVER_PORT
from app.run.postgres_cluster import LocalCluster
from tests.acceptance.processes import (
    Api,
    Process,
    Processes,
    environment,
    free_port,
    publish,
    run_cli,
    subscribe,
    wait_for_status,
    wait_until,
)
from tests.payloads import order_status_payload
from tests.receivers import Receiver

WEBHOOK_TYPES = "{ webhookTypes { key name } }"
SUBSCRIPTIONS = "{ webhookSubscriptions { nodes { id callbackUrl } } }"
BANNER_END = "Press Ctrl-C to stop"
STARTUP_TIMEOUT = 90.0  # initdb of a durable cluster on a busy machine


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """The dev data directory, outside pytest's 0700 temp root: as root, the embedded
    server runs as another account, which must be able to reach it."""
    root = Path(tempfile.mkdtemp(prefix="webhooks-dev-test-"))
    try:
        yield root / "data"
    finally:
        # Should the test fail before Ctrl-C, pg_ctl's server is in a session of its own:
        # killing `webhooks dev` leaves it running.
        cluster = LocalCluster(root / "data" / "postgres")
        if cluster.is_running():
            cluster.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path / "logs") as started:
        yield started


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


def banner_keys(process: Process) -> dict[str, str]:
    """The demo company and keys the banner printed."""
    log = process.wait_for_log(BANNER_END, timeout=STARTUP_TIMEOUT)
    found = {
        "company": re.search(r"^\s*Company\s+(\S+) \(Demo Company\)", log, re.MULTILINE),
        "company_key": re.search(r"^\s*COMPANY key\s+(pwk_\S+)", log, re.MULTILINE),
        "publisher_key": re.search(r"^\s*PUBLISHER\s+(pwk_\S+)", log, re.MULTILINE),
    }
    missing = [name for name, match in found.items() if match is None]
    assert not missing, process.fail(f"banner lacks {missing}")
    return {name: match.group(1) for name, match in found.items() if match is not None}


def assert_the_portal_link_opens(process: Process) -> None:
    """The banner's portal link opens the demo company's portal, once."""
    found = re.search(r"^\s*Portal\s+(http://\S+)", process.log(), re.MULTILINE)
    assert found is not None, process.fail("banner lacks the portal link")
    with httpx.Client(timeout=5) as browser:
        opened = browser.get(found.group(1))
        assert opened.status_code == 303, opened.text
        page = browser.get(process.url("/portal/"))
        assert page.status_code == 200 and "Demo Company" in page.text
        assert browser.get(found.group(1)).status_code == 403


def postgres_processes_of(data_dir: Path) -> list[int]:
    """Pids of live processes whose command line names ``data_dir``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(data_dir) in command and state not in ("Z", "X"):
            pids.append(int(entry.name))
    return pids


def stop_with(sig: signal.Signals, process: Process, data_dir: Path) -> None:
    """SIGINT (Ctrl-C) or SIGTERM (a service manager): everything must stop, the embedded
    database too, and the exit status be 0 (a graceful stop, not a crash)."""
    exit_status = process.stop(sig, timeout=30)
    assert exit_status == 0, process.describe()
    assert "embedded PostgreSQL stopped" in process.log(), process.describe()
    assert postgres_processes_of(data_dir / "postgres") == []
    assert not (data_dir / "postgres" / "postmaster.pid").exists()


def test_dev_runs_with_zero_setup_and_keeps_its_data(
    data_dir: Path, processes: Processes, receiver: Receiver
) -> None:
    # NO database and no secret key: only where to keep the data
    env = environment(WEBHOOKS_DATA_DIR=str(data_dir))

    # first run: embedded PostgreSQL, banner with the demo keys, API, GraphiQL, worker
    first = processes.dev(env, name="dev-1")
    keys = banner_keys(first)
    assert f"starting embedded PostgreSQL in {data_dir / 'postgres'}" in first.log()
    assert postgres_processes_of(data_dir / "postgres"), first.describe()
    ready = first.wait_for_http("/readyz")
    assert ready.json() == {
        "ready": True,
        "checks": {"database": True, "migrations": True, "resources": True, "worker": True},
    }
    graphiql = httpx.get(first.url("/graphql"), headers={"accept": "text/html"}, timeout=5)
    assert graphiql.status_code == 200
    assert graphiql.headers["content-type"].startswith("text/html")
    assert "graphiql" in graphiql.text.lower()
    assert_the_portal_link_opens(first)
    with Api(first.url("")) as api:
        types = api.data(WEBHOOK_TYPES, key=keys["company_key"])["webhookTypes"]
        assert {"key": "ORDER_STATUS", "name": "Order Status"} in types
        subscription_id, secret = subscribe(api, keys["company_key"], receiver.url_for("/local"))
        first_order = order_status_payload(external_id="dev-1")
        event = publish(api, keys["publisher_key"], keys["company"], first_order)
        [request] = receiver.wait_for(1, timeout=15)
        wait_for_status(api, keys["company_key"], event["deliveries"][0]["id"], "SUCCEEDED")
    Webhook(secret).verify(request.body, dict(request.headers))
    assert request.json()["data"] == first_order

    stop_with(signal.SIGINT, first, data_dir)

    # second run: the same data, keys and subscription (and the secret still decrypts)
    second = processes.dev(env, name="dev-2")
    assert banner_keys(second) == keys
    second.wait_for_http("/readyz")
    with Api(second.url("")) as api:
        subscriptions = api.data(SUBSCRIPTIONS, key=keys["company_key"])
        assert subscriptions["webhookSubscriptions"]["nodes"] == [
            {"id": subscription_id, "callbackUrl": receiver.url_for("/local")}
        ]
        second_order = order_status_payload(external_id="dev-2")
        publish(api, keys["publisher_key"], keys["company"], second_order)
        requests = receiver.wait_for(2, timeout=15)
    Webhook(secret).verify(requests[1].body, dict(requests[1].headers))
    assert requests[1].json()["data"] == second_order

    # this time stopped as a service manager would
    stop_with(signal.SIGTERM, second, data_dir)


def banner_commands(log: str) -> list[str]:
    """The banner's copy-paste commands, each with its continuation lines, in order."""
    commands: list[str] = []
    lines = iter(log.splitlines())
    for line in lines:
        if line.startswith(("curl ", "SIGNING_SECRET=")):
            command = [line]
            while command[-1].endswith("\\"):
                command.append(next(lines))
            commands.append("\n".join(command))
    return commands


def test_dev_banner_examples_work_when_copied_and_the_cli_finds_its_database(
    data_dir: Path, processes: Processes, tmp_path: Path
) -> None:
    # given `webhooks dev` on the port WEBHOOKS_PORT names (no --port)
    port = free_port()
    env = environment(WEBHOOKS_DATA_DIR=str(data_dir), WEBHOOKS_PORT=str(port))
    dev = processes.start("dev", "dev", env=env, base_url=f"http://127.0.0.1:{port}")
    keys = banner_keys(dev)
    log = dev.log()
    assert f"http://127.0.0.1:{port}/graphql" in log
    subscribe_command, receiver_command, publish_command = banner_commands(log)

    # when a user pastes step 1 (the receiver's port swapped for a free one)
    receiver_port = free_port()

    def pasted(command: str) -> str:
        return command.replace(f":{EXAMPLE_RECEIVER_PORT}", f":{receiver_port}").replace(
            f" {EXAMPLE_RECEIVER_PORT}", f" {receiver_port}"
        )

    created = json.loads(shell(pasted(subscribe_command)))
    payload = created["data"]["createWebhookSubscription"]
    assert payload["userErrors"] == [], created
    secret = payload["signingSecret"]

    # then step 2 runs the example receiver with that secret
    receiver_log = tmp_path / "receiver.log"
    with receiver_log.open("wb") as out:
        receiver = subprocess.Popen(
            ["bash", "-c", pasted(receiver_command).replace("whsec_...", secret)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: _listening(receiver_port), timeout=20, message=lambda: receiver_log.read_text()
        )
        # and step 3 publishes for the demo company, and the receiver verifies it
        published = json.loads(shell(publish_command))
        assert published["data"]["publishEvent"]["userErrors"] == [], published
        line = wait_until(
            lambda: next(
                (text for text in receiver_log.read_text().splitlines() if "webhookId" in text),
                None,
            ),
            timeout=20,
            message=lambda: receiver_log.read_text() + dev.describe(),
        )
    finally:
        os.killpg(receiver.pid, signal.SIGKILL)
        receiver.wait()
    received = json.loads(line)
    assert received["event"]["companyId"] == keys["company"] == "demo"
    assert received["event"]["data"]["order_status"] == "scheduled"

    # and the CLI next to it, with no database configured, finds dev's database
    created_company = run_cli("company", "create", "Acme Realty", "--id", "acme", "--json", env=env)
    assert created_company.json()["id"] == "acme", created_company.describe()
    assert "using the one of `webhooks dev`" in created_company.stderr
    # and its outbox, empty so far, lists nothing (not an error), without the database note
    emails = run_cli("emails", "list", env=env)
    assert emails.returncode == 0, emails.describe()
    assert "no emails in the outbox" in emails.stderr
    assert "using the one of" not in emails.stderr

    stop_with(signal.SIGINT, dev, data_dir)
    # once dev has stopped, the CLI no longer pretends to have a database
    after = run_cli("company", "list", "--json", env=env)
    assert after.returncode == 2, after.describe()
    assert "WEBHOOKS_DATABASE_URL" in after.stderr


def test_dev_refuses_a_port_in_use_before_printing_keys(
    data_dir: Path, processes: Processes
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        dev = processes.dev(environment(WEBHOOKS_DATA_DIR=str(data_dir)), port=port)
        exit_status = dev.wait(timeout=30)
    assert exit_status == 2, dev.describe()
    log = dev.log()
    assert f"127.0.0.1:{port}" in log and "--port" in log and "make dev PORT=" in log, log
    assert "COMPANY key" not in log and "is running" not in log
    assert not (data_dir / "postgres").exists()


def shell(command: str) -> str:
    completed = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=30, check=False
    )
    assert completed.returncode == 0, f"{command}\n{completed.stdout}\n{completed.stderr}"
    return completed.stdout


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_a_second_dev_with_the_same_data_directory_is_refused_and_the_first_keeps_running(
    data_dir: Path, processes: Processes
) -> None:
    # Given a running `webhooks dev`
    env = environment(WEBHOOKS_DATA_DIR=str(data_dir))
    first = processes.dev(env, name="dev-1")
    banner_keys(first)

    # When another one starts with the same data directory (on another port)
    second = processes.dev(env, name="dev-2")
    exit_status = second.wait(timeout=30)

    # Then it is refused before touching anything, and the first one's database lives on
    assert exit_status == 2, second.describe()
    assert "already runs with the data directory" in second.log()
    assert "embedded PostgreSQL" not in second.log()
    ready = first.wait_for_http("/readyz")
    assert ready.json()["ready"] is True
    stop_with(signal.SIGINT, first, data_dir)
