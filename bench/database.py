"""PostgreSQL for a benchmark run: a durable local cluster of its own, or DATABASE_URL.

Durable on purpose: fsync, synchronous commit and full-page writes stay on, as in
production (the test suite turns them off for speed; a benchmark must not). Every phase
group gets a fresh database cloned from one migrated template; all of them are dropped,
and the cluster stopped and deleted, when the run ends.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from types import TracebackType
from urllib.parse import quote, urlsplit

import psycopg
from psycopg import sql

from app.run.postgres_cluster import LocalCluster
from app.store.migrations import apply_migrations

STATEMENT_COUNTING = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "top",  # what clients send, not what functions run
    "pg_stat_statements.max": "10000",
}


class BenchDatabases:
    """The server of a run and the databases created on it."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.cluster: LocalCluster | None = None
        self.server_url = ""
        self.prefix = f"bench_{secrets.token_hex(4)}"
        self.created: list[str] = []
        self.template = f"{self.prefix}_template"
        self.source = ""

    def start(self) -> None:
        configured = os.environ.get("WEBHOOKS_DATABASE_URL") or os.environ.get("DATABASE_URL")
        if configured:
            self.server_url = configured
            self.source = "DATABASE_URL"
        else:
            # On disk (the work directory is under TMPDIR, never /dev/shm): a durable
            # cluster belongs on a disk, as in production.
            # pg_stat_statements counts the worker's statements (phase S); preloading it
            # costs nothing measurable beside a delivery's statements.
            self.cluster = LocalCluster(
                self.work_dir / "postgres", durable=True, server_settings=STATEMENT_COUNTING
            )
            self.server_url = self.cluster.start()
            self.source = "LocalCluster(durable=True), temporary"
        self._create(self.template, template=None)
        apply_migrations(self.url(self.template))

    def create_empty(self, purpose: str) -> str:
        """A fresh database with nothing in it (not even our migrations); returns its URL."""
        name = f"{self.prefix}_{purpose}"
        self._create(name, template=None)
        return self.url(name)

    def url(self, database: str) -> str:
        return urlsplit(self.server_url)._replace(path="/" + quote(database, safe="")).geturl()

    def create(self, purpose: str) -> str:
        """A fresh, migrated database for ``purpose``; returns its URL."""
        name = f"{self.prefix}_{purpose}"
        self._create(name, template=self.template)
        return self.url(name)

    def postmaster_pid(self) -> int | None:
        """The server's pid when it is our own cluster (for CPU accounting), else None."""
        if self.cluster is None:
            return None
        try:
            first = (self.cluster.data_dir / "postmaster.pid").read_text().splitlines()[0]
        except (OSError, IndexError):
            return None
        return int(first) if first.strip().isdigit() else None

    def server_version(self) -> str:
        with psycopg.connect(self.server_url) as connection:
            row = connection.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def _create(self, name: str, template: str | None) -> None:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        with psycopg.connect(self.server_url, autocommit=True) as connection:
            connection.execute(statement)
        self.created.append(name)

    def close(self) -> None:
        """Drop every database of the run; stop and delete our own cluster."""
        try:
            if self.cluster is None and self.server_url:
                with psycopg.connect(self.server_url, autocommit=True) as connection:
                    for name in reversed(self.created):
                        connection.execute(
                            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                                sql.Identifier(name)
                            )
                        )
        finally:
            if self.cluster is not None:
                self.cluster.stop(mode="fast")
                shutil.rmtree(self.cluster.data_dir, ignore_errors=True)

    def __enter__(self) -> BenchDatabases:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
