"""Database: the one module that executes SQL.

Callers name a query from ``sql/queries`` and pass its arguments; rows come back as
dicts. ``transaction()`` groups several queries atomically and exposes the underlying
connection so Procrastinate can insert jobs in the same transaction.

Every transaction opened while a :class:`Scope` is bound (``bind_scope``) first enters
that scope: a non-owner role and, for COMPANY keys, the company, so PostgreSQL's
row-level security confines it even if a query forgot its company filter.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from app.queries import QUERIES

Row = dict[str, Any]
RoleName = Literal["webhooks_api", "webhooks_publisher", "webhooks_worker"]


@dataclass(frozen=True)
class Scope:
    """A database role for the service's connections, and the company it is confined to."""

    role: RoleName
    company_id: str | None = None


WORKER_SCOPE = Scope("webhooks_worker")
PUBLISHER_SCOPE = Scope("webhooks_publisher")

_scope: ContextVar[Scope | None] = ContextVar("database_scope", default=None)


def bind_scope(scope: Scope | None) -> None:
    """Bind ``scope`` to the current task (and the tasks it starts) from now on."""
    _scope.set(scope)


@contextmanager
def scoped(scope: Scope | None) -> Iterator[None]:
    """Bind ``scope`` for the duration of a block."""
    token = _scope.set(scope)
    try:
        yield
    finally:
        _scope.reset(token)


def current_scope() -> Scope | None:
    return _scope.get()


class Session:
    """Runs named queries on one connection (inside a transaction when one is open)."""

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self.connection = connection

    async def fetch_one(self, query: str, **arguments: Any) -> Row | None:
        async with self.connection.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(QUERIES[query], arguments)
            return await cursor.fetchone()

    async def fetch_all(self, query: str, **arguments: Any) -> list[Row]:
        async with self.connection.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(QUERIES[query], arguments)
            return await cursor.fetchall()

    async def execute(self, query: str, **arguments: Any) -> int:
        """Run a statement; returns the number of rows it touched."""
        async with self.connection.cursor() as cursor:
            await cursor.execute(QUERIES[query], arguments)
            return cursor.rowcount


class Database:
    """A connection pool and named queries over it."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self.pool = pool

    @classmethod
    def create_pool(
        cls, url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 10.0
    ) -> AsyncConnectionPool[Any]:
        """A closed pool; open it with ``await pool.open()`` or ``async with``.

        No ``autocommit`` in the connection kwargs: Procrastinate's listener adds its own
        (see stack notes) and our transactions are explicit.
        """
        return AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            kwargs={"connect_timeout": 5},
            check=AsyncConnectionPool.check_connection,
            name="webhooks",
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        """One connection; its statements commit together when the block ends."""
        async with self.pool.connection() as connection:
            session = Session(connection)
            await _enter_scope(session)
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        """One connection inside one transaction: all or nothing."""
        async with self.pool.connection() as connection, connection.transaction():
            session = Session(connection)
            await _enter_scope(session)
            yield session

    async def applied_migrations(self) -> set[str]:
        """Names of the applied migrations (readiness)."""
        return {row["name"] for row in await self.fetch_all("applied_migrations")}

    async def fetch_one(self, query: str, **arguments: Any) -> Row | None:
        async with self.session() as session:
            return await session.fetch_one(query, **arguments)

    async def fetch_all(self, query: str, **arguments: Any) -> list[Row]:
        async with self.session() as session:
            return await session.fetch_all(query, **arguments)

    async def execute(self, query: str, **arguments: Any) -> int:
        async with self.session() as session:
            return await session.execute(query, **arguments)


async def _enter_scope(session: Session) -> None:
    scope = _scope.get()
    if scope is not None:
        await session.execute("enter_scope", role=scope.role, company_id=scope.company_id)


async def listen(url: str, query: str, ready: asyncio.Event | None = None) -> AsyncIterator[str]:
    """Payloads of the notifications a LISTEN query subscribes to, on a dedicated connection.

    ``ready`` is set once the LISTEN is in place. Ends (raising psycopg.Error) when the
    connection is lost; the caller reconnects.
    """
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        await connection.execute(QUERIES[query])
        if ready is not None:
            ready.set()
        async for notification in connection.notifies():
            yield notification.payload
