"""The fault tests' harness: a PostgreSQL they own, the real service as subprocesses, load.

Fault tests stop and start the database, SIGKILL workers and take the mail server away,
so they never share the session's cluster: each test module starts its own durable
:class:`~app.run.postgres_cluster.LocalCluster` (on a fixed port, so a restart comes back
on the same address), migrates a template database once, and gives every test a fresh
copy of it. The service runs as real ``webhooks worker`` / ``webhooks serve``
subprocesses (:mod:`tests.acceptance.processes`); tenants, subscriptions and load are
written in-process with the domain functions, the way the order system's publishes
would land.

Test modules import the fixtures they use from here (there is no conftest)::

    from tests.faults.harness import (  # noqa: F401 -- the fixtures
        Stack,
        owned_postgres_fixture,
        stack_fixture,
    )
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from app.core.delivery_ordering import DeliveryOrdering
from app.core.secret_box import generate_key
from app.core.settings import Settings
from app.domain import companies
from app.domain.events import NewEvent
from app.domain.subscriptions import NewSubscription
from app.run.postgres_cluster import LocalCluster, StopMode
from app.store.migrations import apply_migrations
from app.store.services import Services, open_services
from tests.acceptance.processes import (
    PUBLISH_EVENT,
    Process,
    Processes,
    free_port,
    service_environment,
    wait_until,
)
from tests.database import make_scratch_dir
from tests.payloads import order_status_payload
from tests.receivers import RecordedRequest
from tests.service import create_subscription_for, publish_event_with

# Concurrent in-process publishes: the publisher's pool holds 10 connections.
PUBLISHERS = 8
DELIVERY_ID_LINE = re.compile(r"^Delivery id: (\S+)", re.MULTILINE)


# -- the database the tests own ----------------------------------------------------------


class OwnedPostgres:
    """A durable PostgreSQL of one test module: stoppable, restartable, always same port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cluster = LocalCluster(root / "data", port=free_port(), durable=True)
        self.template = f"faults_template_{secrets.token_hex(4)}"

    def start(self) -> None:
        self.cluster.start()

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server (``fast``: clients are disconnected, as in a failover)."""
        self.cluster.stop(mode=mode)

    def url(self, database: str = "postgres") -> str:
        return self.cluster.url(database)

    def prepare_template(self) -> None:
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {self.template}")
        apply_migrations(self.url(self.template))
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"ALTER DATABASE {self.template} WITH is_template = true")

    def new_database(self) -> str:
        """A fresh migrated database; returns its name."""
        name = f"faults_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name} TEMPLATE {self.template}")
        return name

    def drop_database(self, name: str) -> None:
        if not self.cluster.is_running():
            self.start()
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        try:
            self.cluster.stop(mode="immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module", name="owned_postgres")
def owned_postgres_fixture() -> Iterator[OwnedPostgres]:
    """This module's own durable PostgreSQL with a migrated template database."""
    owned = OwnedPostgres(make_scratch_dir("webhooks-faults-pg-"))
    try:
        owned.start()
        owned.prepare_template()
        yield owned
    finally:
        owned.close()


# -- the service as subprocesses -----------------------------------------------------------


@dataclass(frozen=True)
class Sub:
    """A subscription made for a test: its id, company, signing secret and URL."""

    id: str
    company_id: str
    secret: str
    callback_url: str


@dataclass(frozen=True)
class Published:
    """One published event with its single delivery."""

    event_id: str
    delivery_id: str
    webhook_id: str
    published_at: float  # time.monotonic() right after the commit
    subscription_id: str


class Stack:
    """One test's deployment: a fresh database on the owned server, its settings (as
    environment for the subprocesses), the subprocesses, and in-process helpers."""

    def __init__(self, owner: OwnedPostgres, database: str, directory: Path) -> None:
        self.owner = owner
        self.database = database
        self.url = owner.url(database)
        self.directory = directory
        self.secret_key = generate_key()
        self.processes = Processes(directory / "logs")
        self.overrides: dict[str, str] = {}

    # -- configuration -------------------------------------------------------------------

    def configure(self, **variables: str | float) -> None:
        """Service settings (``WEBHOOKS_...`` names) for every process started after."""
        self.overrides.update({name: str(value) for name, value in variables.items()})

    def env(self, **variables: str | float) -> dict[str, str]:
        return service_environment(
            self.url,
            self.directory / "data",
            self.secret_key,
            WEBHOOKS_RATE_LIMIT_PER_SECOND="0",
            # Every subscription here mails one address; the limit has tests of its own.
            WEBHOOKS_EMAIL_ADDRESS_PER_HOUR="0",
            WEBHOOKS_EMAIL_ADDRESS_PER_DAY="0",
            **{**self.overrides, **{name: str(value) for name, value in variables.items()}},
        )

    def settings(self) -> Settings:
        """In-process settings: the subprocesses' own (publishes read max_attempts)."""
        return Settings.from_env(self.env())

    # -- processes -----------------------------------------------------------------------

    def worker(
        self, name: str = "worker", *, listening: int | None = 1, **variables: Any
    ) -> Process:
        """Start ``webhooks worker``; wait until ``listening`` workers LISTEN (None: no wait)."""
        process = self.processes.worker(self.env(**variables), name=name)
        if listening:
            self.wait_for_listeners(listening, process)
        return process

    def listeners(self) -> int:
        """How many sessions LISTEN on this database (one per live worker)."""
        rows = self.sql(
            "SELECT count(*) AS n FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN %%'"
        )
        return int(rows[0]["n"])

    def wait_for_listeners(self, count: int, process: Process, timeout: float = 30) -> None:
        """Wait until ``count`` workers LISTEN; fail early if ``process`` exits."""

        def check() -> bool:
            if process.returncode is not None:
                raise process.fail("exited before it listened")
            return self.listeners() >= count

        wait_until(check, timeout=timeout, interval=0.05, message=process.describe)

    def serve(self, name: str = "serve", **variables: Any) -> Process:
        return self.processes.serve(self.env(**variables), name=name)

    def cleanup(self) -> None:
        self.processes.cleanup()

    # -- setup and load, in-process ---------------------------------------------------------

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine to completion (tests here are sync: the service is elsewhere)."""
        return asyncio.run(coroutine)

    def company(self, company_id: str) -> None:
        async def work() -> None:
            async with open_services(self.settings()) as services:
                await companies.create_company(services.db, company_id.title(), company_id)

        self.run(work())

    def subscribe(
        self,
        company_id: str,
        callback_url: str,
        email: str = "ops@example.com",
        ordering: DeliveryOrdering = DeliveryOrdering.NONE,
    ) -> Sub:
        async def work() -> Sub:
            async with open_services(self.settings()) as services:
                subscription, secret = await create_subscription_for(
                    services,
                    company_id,
                    NewSubscription("ORDER_STATUS", callback_url, email, ordering=ordering),
                )
            return Sub(str(subscription.id), company_id, secret, callback_url)

        result: Sub = self.run(work())
        return result

    def publish(self, plan: Sequence[tuple[Sub, dict[str, Any]]]) -> list[Published]:
        """Publish one event per ``(subscription, payload)``, :data:`PUBLISHERS` at a time;
        each company in the plan must have exactly that one subscription."""
        result: list[Published] = self.run(self.publish_async(plan))
        return result

    async def publish_async(
        self, plan: Sequence[tuple[Sub, dict[str, Any]]], *, pace: float = 0.0
    ) -> list[Published]:
        """:meth:`publish` in a running loop; ``pace`` seconds between publish starts."""
        async with open_services(self.settings()) as services:
            gate = asyncio.Semaphore(PUBLISHERS)

            async def one(sub: Sub, payload: dict[str, Any]) -> Published:
                async with gate:
                    event_id = await self.publish_one(services, sub, payload)
                    at = time.monotonic()
                return Published(event_id, "", "", at, sub.id)

            tasks = []
            for sub, payload in plan:
                tasks.append(asyncio.create_task(one(sub, payload)))
                if pace:
                    await asyncio.sleep(pace)
            published = await asyncio.gather(*tasks)
        return self._with_deliveries(published)

    async def publish_one(self, services: Services, sub: Sub, payload: dict[str, Any]) -> str:
        """Publish one ORDER_STATUS event for ``sub``'s company; returns the event id."""
        event = await publish_event_with(
            services, NewEvent(sub.company_id, "ORDER_STATUS", payload, subject="fault")
        )
        return str(event.id)

    def _with_deliveries(self, published: Sequence[Published]) -> list[Published]:
        rows = {
            str(row["event_id"]): row
            for row in self.sql("SELECT id, event_id, webhook_id FROM deliveries")
        }
        return [
            Published(
                p.event_id,
                str(rows[p.event_id]["id"]),
                rows[p.event_id]["webhook_id"],
                p.published_at,
                p.subscription_id,
            )
            for p in published
        ]

    # -- the database, for what the API does not show ---------------------------------------

    def sql(self, query: str, **arguments: Any) -> list[dict[str, Any]]:
        with (
            psycopg.connect(self.url, autocommit=True, connect_timeout=5) as connection,
            connection.cursor(row_factory=dict_row) as cursor,
        ):
            cursor.execute(query, arguments)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def status_counts(self) -> Counter[str]:
        rows = self.sql("SELECT status, count(*) AS n FROM deliveries GROUP BY status")
        return Counter({row["status"]: row["n"] for row in rows})

    def open_jobs(self) -> int:
        rows = self.sql(
            "SELECT count(*) AS n FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
        )
        return int(rows[0]["n"])

    def wait_settled(self, expected: int, *, timeout: float, final: Sequence[str]) -> Counter[str]:
        """Wait until ``expected`` deliveries are all in ``final`` states and no job is
        queued or running (the failure emails included); returns the status counts."""
        last: list[Counter[str]] = [Counter()]

        def settled() -> bool:
            counts = self.status_counts()
            last[0] = counts
            done = sum(counts[status] for status in final)
            return done == expected == sum(counts.values()) and self.open_jobs() == 0

        wait_until(
            settled,
            timeout=timeout,
            interval=0.25,
            message=lambda: (
                f"not settled: {dict(last[0])}, {self.open_jobs()} open jobs\n"
                + self.processes.describe()
            ),
        )
        return last[0]

    def attempt_gaps(self) -> list[tuple[str, int, int, list[int]]]:
        """Deliveries whose recorded attempt numbers are not exactly 1..attempt_count of
        their current cycle: ``(id, cycle, attempt_count, numbers)``."""
        rows = self.sql(
            "SELECT d.id::text AS id, d.cycle, d.attempt_count,"
            " coalesce(array_agg(a.number ORDER BY a.number)"
            "          FILTER (WHERE a.number IS NOT NULL), '{}') AS numbers"
            " FROM deliveries d LEFT JOIN delivery_attempts a"
            "   ON a.delivery_id = d.id AND a.cycle = d.cycle"
            " GROUP BY d.id, d.cycle, d.attempt_count"
        )
        return [
            (row["id"], row["cycle"], row["attempt_count"], list(row["numbers"]))
            for row in rows
            if list(row["numbers"]) != list(range(1, row["attempt_count"] + 1))
        ]


@pytest.fixture(name="stack")
def stack_fixture(owned_postgres: OwnedPostgres, tmp_path: Path) -> Iterator[Stack]:
    """A fresh database on this module's server, and the processes of one test (killed at
    the end, whatever happened)."""
    if not owned_postgres.cluster.is_running():
        owned_postgres.start()  # a test that stopped it and failed before restarting
    database = owned_postgres.new_database()
    deployment = Stack(owned_postgres, database, tmp_path)
    try:
        yield deployment
    finally:
        try:
            deployment.cleanup()
        finally:
            owned_postgres.drop_database(database)


# -- load over HTTP ----------------------------------------------------------------------


@dataclass(frozen=True)
class PublishCall:
    """One ``publishEvent`` over HTTP: when it started and ended, and how it was answered."""

    started: float  # time.monotonic()
    ended: float
    status: int | None  # None: no HTTP answer at all
    codes: tuple[str, ...]  # extensions.code of each GraphQL error
    retry_after: str | None
    event_id: str | None  # set when the event was published

    @property
    def took(self) -> float:
        return self.ended - self.started


@dataclass
class Publisher:
    """Publishes one event every ``pause`` seconds over HTTP, noting what succeeded."""

    base_url: str
    key: str
    company_id: str
    pause: float = 0.05
    timeout: float = 30.0
    succeeded: list[tuple[float, str]] = field(default_factory=list)  # (when, event id)
    failed: list[tuple[float, str]] = field(default_factory=list)  # (when, why)
    calls: list[PublishCall] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="publisher")
        self.thread.start()

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=self.timeout) as http:
            number = 0
            while not self.stop.is_set():
                number += 1
                variables = {
                    "input": {
                        "companyId": self.company_id,
                        "webhook": "ORDER_STATUS",
                        "payload": order_status_payload(n=number),
                        "subject": f"o-{number}",
                    }
                }
                started = time.monotonic()
                try:
                    response = http.post(
                        "/graphql",
                        json={"query": PUBLISH_EVENT, "variables": variables},
                        headers={"authorization": f"Bearer {self.key}"},
                    )
                except httpx.HTTPError as error:
                    self.failed.append((time.monotonic(), repr(error)))
                    self.calls.append(PublishCall(started, time.monotonic(), None, (), None, None))
                else:
                    self._note(started, response)
                time.sleep(self.pause)

    def _note(self, started: float, response: httpx.Response) -> None:
        ended = time.monotonic()
        try:
            body = response.json()
        except ValueError:
            body = {}
        errors = body.get("errors") or []
        event = ((body.get("data") or {}).get("publishEvent") or {}).get("event")
        event_id = event["id"] if event and response.status_code == 200 else None
        if errors or event_id is None:
            self.failed.append((ended, response.text[:200]))
        else:
            self.succeeded.append((ended, event_id))
        codes = tuple(str((error.get("extensions") or {}).get("code")) for error in errors)
        self.calls.append(
            PublishCall(
                started,
                ended,
                response.status_code,
                codes,
                response.headers.get("retry-after"),
                None if errors else event_id,
            )
        )


# -- what receivers saw ---------------------------------------------------------------------


def duplicates(requests: Sequence[RecordedRequest]) -> Counter[tuple[str, str]]:
    """Extra copies of one attempt: ``(webhook-id, webhook-attempt)`` seen more than once."""
    seen = Counter(
        (request.header("webhook-id") or "", request.header("webhook-attempt") or "")
        for request in requests
    )
    return Counter({key: n - 1 for key, n in seen.items() if n > 1})


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary(values: Sequence[float]) -> str:
    p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
    worst, mean = max(values) * 1000, statistics.fmean(values) * 1000
    return f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {worst:.0f} ms, mean {mean:.0f} ms"


def delivery_ids_in(body: str) -> list[str]:
    """The delivery ids a failure email reports."""
    return DELIVERY_ID_LINE.findall(body)
