"""PostgreSQL for the test suite: one server per session, one migrated template, one
fresh database per test.

The server is ``WEBHOOKS_DATABASE_URL`` (or ``DATABASE_URL``) when set; otherwise a
throwaway :class:`~app.run.postgres_cluster.LocalCluster` (non-durable, so fast) in a temporary
directory, stopped and deleted at the end of the session. The template database is
built once with ``app.store.migrations.apply_migrations``; each test gets its own copy made
with ``CREATE DATABASE ... TEMPLATE`` by pytest-postgresql's ``DatabaseJanitor`` and
dropped afterwards; a thread of the session's (:class:`DatabaseSupply`) makes the copies
ahead and drops the used ones while the tests run. Names are random, so concurrent
sessions on one server never collide.
"""

from __future__ import annotations

import os
import queue
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
import pytest
from pytest_postgresql.janitor import DatabaseJanitor

from app.run.postgres_cluster import LocalCluster

# How long the janitor keeps retrying to connect before giving up (its default is 60 s).
CONNECT_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class PostgresServer:
    """The test server: its URL, and its parameters as libpq resolved them."""

    base_url: str
    host: str
    port: int
    user: str
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> PostgresServer:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS) as connection:
            info = connection.info
            return cls(url, info.host, info.port, info.user, info.password or None)

    def url(self, database: str) -> str:
        """The server's URL pointed at ``database`` (other options, e.g. sslmode, kept)."""
        return urlsplit(self.base_url)._replace(path="/" + quote(database, safe="")).geturl()

    def janitor(
        self, dbname: str, *, template: str | None = None, as_template: bool = False
    ) -> DatabaseJanitor:
        """A janitor creating ``dbname`` on this server, as a copy of ``template`` if given."""
        return DatabaseJanitor(
            user=self.user,
            host=self.host,
            port=self.port,
            password=self.password,
            dbname=dbname,
            template_dbname=template,
            as_template=as_template,
            connection_timeout=CONNECT_TIMEOUT_SECONDS,
        )


def make_scratch_dir(prefix: str) -> Path:
    """A new, empty directory for a throwaway cluster; the caller deletes it.

    Not tmp_path_factory: /tmp/pytest-of-<user> is 0700, closed to the unprivileged
    account the server runs as when the tests run as root. RAM-backed /dev/shm when it is
    roomy (not Docker's default 64 MB) and TMPDIR is unset: creating a database writes
    some 300 files, and file creation on disk made each test's clone 5-10x slower.
    """
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_ram_dir()))


def _ram_dir() -> Path | None:
    shm = Path("/dev/shm")
    if os.environ.get("TMPDIR") or not shm.is_dir() or not os.access(shm, os.W_OK | os.X_OK):
        return None
    try:
        roomy = shutil.disk_usage(shm).free >= 2 * 1024**3
    except OSError:
        return None
    return shm if roomy else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of the session's PostgreSQL server (its ``postgres`` database)."""
    configured = os.environ.get("WEBHOOKS_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    root = make_scratch_dir("webhooks-tests-pg-")
    cluster = LocalCluster(root / "data", durable=False)
    try:
        yield cluster.start()
    finally:
        try:
            cluster.stop(mode="immediate")  # the data is thrown away anyway
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(postgres_url: str) -> PostgresServer:
    """The session's server, its connection parameters resolved."""
    return PostgresServer.from_url(postgres_url)


@pytest.fixture(scope="session")
def database_template(postgres_server: PostgresServer) -> Iterator[str]:
    """Name of a template database with every migration applied, built once a session."""
    from app.store.migrations import apply_migrations

    name = f"webhooks_template_{secrets.token_hex(6)}"
    janitor = postgres_server.janitor(name, as_template=True)
    janitor.init()
    try:
        apply_migrations(postgres_server.url(name))
        yield name
    finally:
        janitor.drop()


class DatabaseSupply:
    """Copies of the template made ahead, and used ones dropped, by a thread of their own.

    Creating a test's database and dropping it afterwards (``DROP DATABASE`` waits for a
    checkpoint) is most of what a short test costs, and it need not wait for the test: the
    thread keeps :data:`SPARES` fresh copies ready and drops each used one after its test,
    while the next test runs. A copy is whole before it is handed out, and the janitor still
    does the dropping (every connection to the database is ended first). A failed copy
    fails the test that asked for it; a failed drop fails the session at its end.
    """

    SPARES = 2
    _CREATE, _STOP = "create", "stop"

    def __init__(self, server: PostgresServer, template: str) -> None:
        self._server = server
        self._template = template
        # Tasks, in order: a janitor to drop, CREATE (make one more spare) or STOP.
        self._tasks: queue.Queue[DatabaseJanitor | str] = queue.Queue()
        self._ready: queue.Queue[DatabaseJanitor | BaseException] = queue.Queue()
        self._failures: list[str] = []
        for _ in range(self.SPARES):
            self._tasks.put(self._CREATE)
        self._thread = threading.Thread(target=self._run, name="test-databases", daemon=True)
        self._thread.start()

    def take(self) -> DatabaseJanitor:
        """A fresh migrated database (its janitor), of the caller's own until :meth:`give_back`."""
        ready = self._ready.get()
        self._tasks.put(self._CREATE)
        if isinstance(ready, BaseException):
            raise ready
        return ready

    def give_back(self, janitor: DatabaseJanitor) -> None:
        """Have the database dropped, soon."""
        self._tasks.put(janitor)

    def close(self) -> None:
        """Drop what was given back and the unused spares; fail if any drop failed."""
        self._tasks.put(self._STOP)
        self._thread.join()
        while not self._ready.empty():
            spare = self._ready.get()
            if not isinstance(spare, BaseException):
                self._drop(spare)
        if self._failures:
            raise RuntimeError("test databases not dropped: " + "; ".join(self._failures))

    def _run(self) -> None:
        while (task := self._tasks.get()) != self._STOP:
            if isinstance(task, DatabaseJanitor):
                self._drop(task)
                continue
            name = f"webhooks_test_{secrets.token_hex(6)}"
            janitor = self._server.janitor(name, template=self._template)
            try:
                janitor.init()
            except Exception as error:  # the test that takes it fails with it
                self._ready.put(error)
            else:
                self._ready.put(janitor)

    def _drop(self, janitor: DatabaseJanitor) -> None:
        try:
            janitor.drop()
        except Exception as error:  # reported by close(), at the end of the session
            self._failures.append(f"{janitor.dbname}: {error!r}")


@pytest.fixture(scope="session")
def database_supply(
    postgres_server: PostgresServer, database_template: str
) -> Iterator[DatabaseSupply]:
    """The session's :class:`DatabaseSupply`, done before the template and server go."""
    supply = DatabaseSupply(postgres_server, database_template)
    try:
        yield supply
    finally:
        supply.close()


@pytest.fixture
def database_url(postgres_server: PostgresServer, database_supply: DatabaseSupply) -> Iterator[str]:
    """URL of a fresh, migrated database of this test's own, dropped afterwards."""
    janitor = database_supply.take()
    try:
        yield postgres_server.url(janitor.dbname)
    finally:
        database_supply.give_back(janitor)
