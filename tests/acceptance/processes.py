"""The real ``webhooks`` command as subprocesses, for the acceptance tests.

``run_cli`` runs one command to completion and parses its ``--json`` output. A
:class:`Processes` starts long-running ones (``serve``, ``worker``, ``dev``) in the
background, each with its own environment and its output in a log file (the benchmark's
``bench.processes.Child``), and kills whatever is still running when the test ends.
Every failure message carries the tail of the process's log.

    with Processes(tmp_path / "processes") as processes:
        api = processes.serve(env)                 # waits until /readyz answers 200
        worker = processes.worker(env)
        ...
        assert worker.stop(signal.SIGTERM, timeout=10) == 0
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import psycopg

from app.core.secret_box import generate_key
from app.core.settings import Settings
from app.domain import api_keys, companies
from app.store.services import open_services
from bench.processes import WEBHOOKS, Child, environment, free_port
from tests.database import PostgresServer
from tests.service import Tenants

T = TypeVar("T")

# Short intervals so retries, recovery and polling happen within a test's time budget.
FAST_SETTINGS = {
    "WEBHOOKS_RETRY_INTERVAL_SECONDS": "1",
    "WEBHOOKS_REQUEST_TIMEOUT_SECONDS": "2",
    "WEBHOOKS_POLL_INTERVAL_SECONDS": "0.2",
    "WEBHOOKS_STALLED_AFTER_SECONDS": "5",
    "WEBHOOKS_EMAIL_WINDOW_SECONDS": "0",
}
LOG_TAIL_LINES = 60


def service_environment(
    database_url: str, data_dir: Path, secret_key: str, **variables: str
) -> dict[str, str]:
    """Environment for ``serve``/``worker``/CLI commands against a test database.

    Receivers listen on loopback, which only WEBHOOKS_ALLOWED_NETWORKS opens.
    """
    return environment(
        **{
            "WEBHOOKS_DATABASE_URL": database_url,
            "WEBHOOKS_DATA_DIR": str(data_dir),
            "WEBHOOKS_SECRET_KEY": secret_key,
            "WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8",
            **FAST_SETTINGS,
            **variables,
        }
    )


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition not met",
) -> T:
    """Call ``check`` until it returns something truthy; return that. Fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"after {timeout} s: {text}")
        time.sleep(interval)


@contextmanager
def empty_database(server: PostgresServer) -> Iterator[str]:
    """URL of a new database with nothing in it (not even migrations), dropped after."""
    name = f"webhooks_acceptance_{secrets.token_hex(6)}"
    with server.janitor(name):
        yield server.url(name)


def seed_tenants(database_url: str) -> Tenants:
    """Companies ``company-a`` and ``company-b`` with a COMPANY key each, and a PUBLISHER
    key, written directly (the CLI that does the same is tested on its own)."""

    async def seed() -> Tenants:
        settings = Settings(database_url=database_url, secret_key=generate_key())
        async with open_services(settings) as services:
            a = await companies.create_company(services.db, "Company A", "company-a")
            b = await companies.create_company(services.db, "Company B", "company-b")
            key_a = await api_keys.create_key(services.db, "COMPANY", a.id)
            key_b = await api_keys.create_key(services.db, "COMPANY", b.id)
            publisher = await api_keys.create_key(services.db, "PUBLISHER", None)
        return Tenants(a.id, b.id, key_a.key, key_b.key, publisher.key)

    return asyncio.run(seed())


# -- one-shot commands --------------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    """A finished ``webhooks`` command."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"`webhooks {' '.join(self.args)}` exited {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )

    def json(self) -> Any:
        """The command's ``--json`` output; the command must have succeeded."""
        assert self.returncode == 0, self.describe()
        try:
            return json.loads(self.stdout)
        except ValueError:
            raise AssertionError(f"stdout is not one JSON document\n{self.describe()}") from None


def run_cli(
    *args: str, env: Mapping[str, str], timeout: float = 30.0, cwd: Path | None = None
) -> CliResult:
    """Run ``webhooks ARGS...`` to completion (in ``cwd``, default this directory)."""
    completed = subprocess.run(
        [WEBHOOKS, *args],
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(tuple(args), completed.returncode, completed.stdout, completed.stderr)


# -- background processes -----------------------------------------------------------


class Process(Child):
    """A background ``webhooks`` process; stdout and stderr go to ``log_path``."""

    def __init__(
        self,
        name: str,
        args: tuple[str, ...],
        env: Mapping[str, str],
        log_path: Path,
        base_url: str | None,
    ) -> None:
        super().__init__(name, [WEBHOOKS, *args], env, log_path, base_url)
        self.args = args

    def fail(self, message: str) -> AssertionError:
        return AssertionError(f"{message}\n{self.describe()}")

    def wait_for_log(self, text: str, *, timeout: float = 15.0) -> str:
        """Wait until ``text`` shows up in the log; returns the log."""

        def check() -> str | None:
            log = self.log()
            if text in log:
                return log
            if self.returncode is not None:
                raise self.fail(f"exited while waiting for {text!r} in its log")
            return None

        return wait_until(check, timeout=timeout, message=lambda: self.describe())

    def wait(self, timeout: float) -> int:
        """Wait for the exit; fail (and kill it) if it takes longer than ``timeout``."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise self.fail(f"still running {timeout} s later; killed") from None

    def stop(self, sig: signal.Signals = signal.SIGTERM, *, timeout: float = 15.0) -> int:
        """Send ``sig`` and wait for the exit; returns the exit status (fails after
        ``timeout``, unlike the benchmark's, which kills a process that lingers)."""
        self.send(sig)
        return self.wait(timeout)


class Processes:
    """Starts the background processes of one test; kills the leftovers at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[Process] = []

    def start(
        self, name: str, *args: str, env: Mapping[str, str], base_url: str | None = None
    ) -> Process:
        """Start ``webhooks ARGS...`` as ``name`` (which names its log file)."""
        process = Process(name, args, env, self.directory / f"{name}.log", base_url)
        self.started.append(process)
        return process

    def serve(
        self, env: Mapping[str, str], *args: str, name: str = "serve", ready: bool = True
    ) -> Process:
        """``webhooks serve`` on a free port; waits until /readyz answers 200."""
        port = free_port()
        process = self.start(
            name,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *args,
            env=env,
            base_url=f"http://127.0.0.1:{port}",
        )
        if ready:
            process.wait_for_http("/readyz")
        return process

    def worker(self, env: Mapping[str, str], *args: str, name: str = "worker") -> Process:
        """``webhooks worker``; see :func:`wait_for_listeners` to know when it listens."""
        return self.start(name, "worker", *args, env=env)

    def dev(self, env: Mapping[str, str], *, name: str = "dev", port: int | None = None) -> Process:
        """``webhooks dev`` on a free port (not waited for: the caller knows what to expect)."""
        port = port or free_port()
        return self.start(
            name, "dev", "--port", str(port), env=env, base_url=f"http://127.0.0.1:{port}"
        )

    def describe(self) -> str:
        return "\n\n".join(process.describe() for process in self.started)

    def cleanup(self) -> None:
        for process in self.started:
            process.kill()

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cleanup()


def wait_for_listeners(
    database_url: str, count: int, *, processes: Processes, timeout: float = 20.0
) -> None:
    """Wait until ``count`` workers LISTEN for new jobs on the database.

    Procrastinate registers a worker before its listener runs; a LISTEN session in
    pg_stat_activity is the moment a new job starts within milliseconds.
    """

    def listening() -> bool:
        with psycopg.connect(database_url, autocommit=True) as connection:
            row = connection.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE 'LISTEN %%'"
            ).fetchone()
        return row is not None and row[0] >= count

    def check() -> bool:
        for process in processes.started:
            if process.returncode is not None:
                raise process.fail("exited while waiting for the workers to listen")
        return listening()

    wait_until(
        check,
        timeout=timeout,
        interval=0.1,
        message=lambda: f"fewer than {count} listening worker(s)\n{processes.describe()}",
    )


# -- GraphQL over HTTP ----------------------------------------------------------------


class GraphQLHttpError(AssertionError):
    pass


class Api:
    """A GraphQL client for a running server: ``data(query, variables, key=...)``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=10.0)

    def post(
        self, query: str, variables: Mapping[str, Any] | None = None, *, key: str | None
    ) -> dict[str, Any]:
        """The whole response body (``data`` and ``errors``)."""
        headers = {"authorization": f"Bearer {key}"} if key else {}
        response = self.http.post(
            "/graphql", json={"query": query, "variables": dict(variables or {})}, headers=headers
        )
        assert response.status_code == 200, f"{response.status_code}: {response.text}"
        body: dict[str, Any] = response.json()
        return body

    def data(
        self, query: str, variables: Mapping[str, Any] | None = None, *, key: str | None
    ) -> dict[str, Any]:
        """``data`` of a response that must have no errors."""
        body = self.post(query, variables, key=key)
        if body.get("errors"):
            raise GraphQLHttpError(body["errors"])
        data: dict[str, Any] = body["data"]
        return data

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def error_codes(body: Mapping[str, Any]) -> list[str]:
    """``extensions.code`` of each GraphQL error in a response body."""
    return [error.get("extensions", {}).get("code") for error in body.get("errors") or []]


CREATE_SUBSCRIPTION = """
mutation Create($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) {
    subscription { id callbackUrl isActive webhook { key } }
    signingSecret
    userErrors { field message code }
  }
}
"""

PUBLISH_EVENT = """
mutation Publish($input: PublishEventInput!) {
  publishEvent(input: $input) {
    event { id subject company { id } deliveries { id webhookId status } }
    userErrors { field message code }
  }
}
"""

DELIVERY = """
query Delivery($id: ID!) {
  delivery(id: $id) {
    id webhookId status attemptCount lastResponseStatus completedAt
    attempts { number cycle responseStatus succeeded error }
  }
}
"""


def subscribe(api: Api, key: str, callback_url: str) -> tuple[str, str]:
    """Create an ORDER_STATUS subscription; returns its id and signing secret."""
    payload = api.data(
        CREATE_SUBSCRIPTION,
        {
            "input": {
                "webhook": "ORDER_STATUS",
                "callbackUrl": callback_url,
                "notificationEmail": "ops@example.com",
            }
        },
        key=key,
    )["createWebhookSubscription"]
    assert payload["userErrors"] == [], payload
    return payload["subscription"]["id"], payload["signingSecret"]


def publish(
    api: Api, key: str, company_id: str, payload: Mapping[str, Any], subject: str | None = None
) -> dict[str, Any]:
    """Publish an ORDER_STATUS event; returns it with its deliveries."""
    result = api.data(
        PUBLISH_EVENT,
        {
            "input": {
                "companyId": company_id,
                "webhook": "ORDER_STATUS",
                "payload": dict(payload),
                "subject": subject,
            }
        },
        key=key,
    )["publishEvent"]
    assert result["userErrors"] == [], result
    event: dict[str, Any] = result["event"]
    return event


def wait_for_status(
    api: Api, key: str, delivery_id: str, status: str, *, timeout: float = 15.0
) -> dict[str, Any]:
    """Poll a delivery until it reaches ``status``; returns it."""
    seen: list[Any] = []

    def check() -> dict[str, Any] | None:
        delivery: dict[str, Any] | None = api.data(DELIVERY, {"id": delivery_id}, key=key)[
            "delivery"
        ]
        seen[:] = [delivery]
        return delivery if delivery is not None and delivery["status"] == status else None

    return wait_until(
        check,
        timeout=timeout,
        interval=0.1,
        message=lambda: f"delivery {delivery_id} never became {status}; last seen {seen}",
    )
