"""Database: the one module that executes SQL.

Callers name a query from ``sql/queries`` and pass its arguments; rows come back as
dicts. ``transaction()`` groups several queries atomically and exposes the underlying
connection so Procrastinate can insert jobs in the same transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from app.queries import QUERIES

Row = dict[str, Any]


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
        """One connection; each statement commits when the block ends."""
        async with self.pool.connection() as connection:
            yield Session(connection)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        """One connection inside one transaction: all or nothing."""
        async with self.pool.connection() as connection, connection.transaction():
            yield Session(connection)

    async def fetch_one(self, query: str, **arguments: Any) -> Row | None:
        async with self.session() as session:
            return await session.fetch_one(query, **arguments)

    async def fetch_all(self, query: str, **arguments: Any) -> list[Row]:
        async with self.session() as session:
            return await session.fetch_all(query, **arguments)

    async def execute(self, query: str, **arguments: Any) -> int:
        async with self.session() as session:
            return await session.execute(query, **arguments)
