"""Stopping ``webhooks serve`` and ``webhooks worker`` with SIGTERM or SIGINT: requests in
flight are answered, and the exit status is 0 (``webhooks dev``: test_dev.py; attempts in
flight when a worker stops: test_worker_processes.py).

The request kept in flight is a ``publishEvent`` whose insert waits on a table lock the
test holds; the signal arrives while it waits, and the lock is released only once the
server has stopped accepting connections.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from app.core.secret_box import generate_key
from tests.acceptance.processes import (
    PUBLISH_EVENT,
    Api,
    Process,
    Processes,
    seed_tenants,
    service_environment,
    subscribe,
    wait_for_listeners,
    wait_until,
)
from tests.payloads import order_status_payload

STOPS = {
    "sigterm": (signal.SIGTERM, ()),
    "sigint": (signal.SIGINT, ()),
    "sigterm-with-worker": (signal.SIGTERM, ("--with-worker",)),
}


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path / "logs") as started:
        yield started


class BackgroundPublish(threading.Thread):
    """One ``publishEvent`` over HTTP in a thread; ``response`` or ``error`` once done."""

    def __init__(self, base_url: str, key: str, company_id: str) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.key = key
        self.company_id = company_id
        self.response: httpx.Response | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        variables = {
            "input": {
                "companyId": self.company_id,
                "webhook": "ORDER_STATUS",
                "subject": "in-flight",
                "payload": order_status_payload(external_id="in-flight"),
            }
        }
        try:
            self.response = httpx.post(
                self.base_url + "/graphql",
                json={"query": PUBLISH_EVENT, "variables": variables},
                headers={"authorization": f"Bearer {self.key}"},
                timeout=30,
            )
        except BaseException as error:  # reported by the test
            self.error = error


def waiting_on_a_lock(database_url: str) -> bool:
    with psycopg.connect(database_url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return row is not None and row[0] > 0


def refuses_connections(server: Process) -> bool:
    try:
        httpx.get(server.url("/healthz"), timeout=1)
    except httpx.ConnectError:
        return True
    except httpx.TransportError:
        return False
    return False


def committed(database_url: str) -> tuple[Any, ...]:
    """How many events and deliveries the database holds."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM deliveries)"
        ).fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize("stop", list(STOPS))
def test_a_stopped_server_answers_the_requests_in_flight_and_exits_0(
    database_url: str, tmp_path: Path, processes: Processes, stop: str
) -> None:
    signum, args = STOPS[stop]
    # Given a server, and a publishEvent in flight: its insert waits on a lock we hold
    tenants = seed_tenants(database_url)
    env = service_environment(database_url, tmp_path / "data", generate_key())
    server = processes.serve(env, *args)
    with Api(server.url("")) as api:
        subscribe(api, tenants.key_a, "http://127.0.0.1:9/hook")
    with psycopg.connect(database_url) as blocker:
        blocker.execute("LOCK TABLE events IN EXCLUSIVE MODE")
        publishing = BackgroundPublish(server.url(""), tenants.publisher, tenants.a)
        publishing.start()
        wait_until(
            lambda: waiting_on_a_lock(database_url),
            timeout=10,
            message=lambda: f"the publish never waited on the lock\n{server.describe()}",
        )

        # When the server is told to stop
        server.send(signum)

        # Then it stops taking connections but keeps running while the request is open
        wait_until(
            lambda: refuses_connections(server),
            timeout=10,
            message=lambda: f"still accepting connections\n{server.describe()}",
        )
        assert server.returncode is None, server.describe()
        assert publishing.is_alive()
        blocker.rollback()  # releases the lock

    # And the request in flight is answered in full, its event committed
    publishing.join(timeout=20)
    assert publishing.error is None, f"{publishing.error!r}\n{server.describe()}"
    assert publishing.response is not None
    assert publishing.response.status_code == 200, publishing.response.text
    body = publishing.response.json()
    assert "errors" not in body, body
    result = body["data"]["publishEvent"]
    assert result["userErrors"] == []
    assert result["event"]["subject"] == "in-flight"
    assert len(result["event"]["deliveries"]) == 1
    assert committed(database_url) == (1, 1)

    # And the process ends on its own, with exit status 0
    assert server.wait(timeout=20) == 0, server.describe()
    assert "Traceback" not in server.log(), server.describe()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_stopped_worker_exits_0(
    database_url: str, tmp_path: Path, processes: Processes, signum: signal.Signals
) -> None:
    # Given a worker listening for jobs
    env = service_environment(database_url, tmp_path / "data", generate_key())
    worker = processes.worker(env)
    wait_for_listeners(database_url, 1, processes=processes)

    # When it is told to stop
    exit_status = worker.stop(signum, timeout=20)

    # Then it stops cleanly
    assert exit_status == 0, worker.describe()
    assert "worker stopped" in worker.log(), worker.describe()
    assert "Traceback" not in worker.log(), worker.describe()
