"""Database: the one module that executes SQL.

Callers name a query from ``sql/queries`` and pass its arguments; rows come back as
dicts. ``transaction()`` groups several queries atomically and exposes the underlying
connection so Procrastinate can insert jobs in the same transaction.

Every transaction opened while a :class:`RowScope` is bound (``bind_scope``) first enters
that scope: a non-owner role and, for COMPANY keys, the company, so PostgreSQL's
row-level security confines it even if a query forgot its company filter.

Round trips are what a worker spends most of its time on (see README, "Performance"), so
pooled connections are in autocommit mode: a lone statement (Procrastinate's fetch and
finish, an unscoped read) is one round trip instead of BEGIN, statement, COMMIT; only
``transaction()`` and scoped sessions pay for BEGIN and COMMIT. A transaction that must
enter a scope runs in pipeline mode, so that BEGIN and entering the scope travel with the
first statement; one with no scope to enter does not unless it asks (``pipeline=True``:
``publishEvent``, whose statements are sent ahead in three round trips instead of six):
psycopg's pipeline machinery costs more client CPU than the one BEGIN round trip it saves
(README, "Performance", "Figures behind the code"). And a connection last handed out
under a second ago is not pinged again.

Scopes without a company (the worker's and the publisher's) can also have a pool of their
own whose connections took on the role for their whole session (``role_pools``). A lone
statement there is a plain autocommit statement, and a transaction needs no scope
statement, which cuts most of a delivery's database CPU in the worker. The main pool's
connections never change role, so Procrastinate, which shares that pool, always runs as
the owner.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import AsyncPipeline
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from app.core.outages import ResourceAlarm
from app.store.connection_limits import (
    RECONNECT_GIVE_UP_SECONDS,
    ConnectionLimits,
    limited_conninfo,
)
from app.store.queries import QUERIES

Row = dict[str, Any]
RoleName = Literal["webhooks_api", "webhooks_publisher", "webhooks_worker"]

# A connection returned to the pool less than this long ago is handed out without the
# liveness ping (one round trip); one that sat idle longer, e.g. across a server restart,
# is still checked before use.
PING_AFTER_IDLE_SECONDS = 1.0


@dataclass(frozen=True)
class RowScope:
    """A database role for the service's connections, and the company it is confined to."""

    role: RoleName
    company_id: str | None = None


WORKER_SCOPE = RowScope("webhooks_worker")
PUBLISHER_SCOPE = RowScope("webhooks_publisher")

_scope: ContextVar[RowScope | None] = ContextVar("database_scope", default=None)


def bind_scope(scope: RowScope | None) -> None:
    """Bind ``scope`` to the current task (and the tasks it starts) from now on."""
    _scope.set(scope)


@contextmanager
def scoped(scope: RowScope | None) -> Iterator[None]:
    """Bind ``scope`` for the duration of a block."""
    token = _scope.set(scope)
    try:
        yield
    finally:
        _scope.reset(token)


class Session:
    """Runs named queries on one connection (inside a transaction when one is open).

    In a transaction that entered a scope the connection is in pipeline mode: statements
    are sent at once and their results awaited when read (a fetch, or the row count of
    ``execute``).
    """

    def __init__(
        self, connection: psycopg.AsyncConnection[Any], pipeline: AsyncPipeline | None = None
    ) -> None:
        self.connection = connection
        self._pipeline = pipeline

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
            if self._pipeline is not None:
                await self._pipeline.sync()  # the row count arrives with the result
            return cursor.rowcount

    async def send(self, query: str, **arguments: Any) -> Sent:
        """Send a statement whose row is read later (:meth:`Sent.row`).

        In pipeline mode it leaves at once and does not wait: statements sent one after
        another, and the next statement read (``fetch_one``, or a ``Sent``'s row), share
        one round trip. Otherwise it runs before this returns. A statement that fails
        raises when its row, or a later statement's, is read; one never read is still run.
        """
        cursor = self.connection.cursor(row_factory=dict_row)
        await cursor.execute(QUERIES[query], arguments)
        return Sent(cursor)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[Session]:
        """A savepoint inside the open transaction: an exception leaving the block undoes
        what the block wrote, and only that; the transaction goes on."""
        async with self.connection.transaction():
            yield self


class Sent:
    """A statement sent by :meth:`Session.send`, its first row still to be read."""

    def __init__(self, cursor: psycopg.AsyncCursor[Row]) -> None:
        self._cursor = cursor

    async def row(self) -> Row | None:
        """The statement's first row (None if it returned none), waiting for it if it has
        not arrived yet; read once."""
        try:
            return await self._cursor.fetchone()
        finally:
            await self._cursor.close()


class Database:
    """A connection pool and named queries over it."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        role_pools: Mapping[RowScope, AsyncConnectionPool[Any]] | None = None,
    ) -> None:
        """``role_pools`` maps company-less scopes to pools made with ``role=`` their
        role; statements in such a scope run there, the rest on ``pool``."""
        for scope, role_pool in (role_pools or {}).items():
            if scope.company_id is not None:
                raise ValueError("a role pool serves a scope without a company")
            if role_pool.name != scope.role:
                raise ValueError(f"the pool for {scope.role} must be made with role=")
        self.pool = pool
        self._role_pools = dict(role_pools or {})
        # Statements that failed for lack of server resources (readiness reads it).
        self.resource_alarm = ResourceAlarm()

    @classmethod
    def create_pool(
        cls,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        role: RoleName | None = None,
        limits: ConnectionLimits | None = None,
    ) -> AsyncConnectionPool[Any]:
        """A closed pool; open it with ``await pool.open()`` or ``async with``.

        Its connections carry ``limits`` (see app/store/connection_limits.py); waiting for a
        connection ends after ``limits.pool_wait_seconds`` with ``PoolTimeout``.

        No ``autocommit`` in the connection kwargs: Procrastinate's listener adds its own
        (see stack notes); ``configure`` switches each new pooled connection to it instead.
        With ``role``, each connection also takes on that role for its whole session (a
        pool for ``role_pools``; never hand it to Procrastinate), and the pool is named
        after the role.
        """
        limits = limits or ConnectionLimits()
        liveness = _Liveness()
        return AsyncConnectionPool(
            limited_conninfo(url, limits),
            min_size=min_size,
            max_size=max_size,
            timeout=limits.pool_wait_seconds,
            reconnect_timeout=RECONNECT_GIVE_UP_SECONDS,
            open=False,
            configure=_autocommit if role is None else _SessionRole(role).configure,
            check=liveness.check,
            name="webhooks" if role is None else role,
        )

    def _route(self) -> tuple[AsyncConnectionPool[Any], bool]:
        """The pool for the bound scope, and whether a transaction must enter the scope."""
        scope = _scope.get()
        if scope is None:
            return self.pool, False
        role_pool = self._role_pools.get(scope)
        if role_pool is not None:
            return role_pool, False
        return self.pool, True

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[Session]:
        """One connection whose statements each commit on their own.

        Only without a scope or on a scope's role pool: a scope that a transaction must
        enter (a company's) lasts as long as that transaction, so it has no such connection.
        """
        pool, enter_scope = self._route()
        if enter_scope:
            raise RuntimeError("this scope holds only inside a transaction: use transaction()")
        with self._watched():
            async with pool.connection() as connection:
                yield Session(connection)

    @asynccontextmanager
    async def transaction(self, *, pipeline: bool = False) -> AsyncIterator[Session]:
        """One connection inside one transaction: all or nothing.

        With ``pipeline`` (or a scope to enter) the connection is in pipeline mode, so that
        statements sent ahead (``Session.send``) travel together, BEGIN with the first of
        them and COMMIT on its own: for a transaction of several statements that can be
        sent before the first answer is read (``publishEvent``), not for one that reads
        each answer before the next (the pipeline's client CPU outweighs one round trip).
        """
        pool, enter_scope = self._route()
        with self._watched():
            if not (enter_scope or pipeline):
                async with pool.connection() as connection, connection.transaction():
                    yield Session(connection)
                return
            async with (
                pool.connection() as connection,
                connection.pipeline() as piped,
                connection.transaction(),
            ):
                session = Session(connection, piped)
                if enter_scope:
                    await _enter_scope(session)
                yield session

    @contextmanager
    def _watched(self) -> Iterator[None]:
        """Note a statement failing for lack of server resources (class 53)."""
        try:
            yield
        except psycopg.Error as error:
            self.resource_alarm.note(error)
            raise

    async def answers(self, within_seconds: float) -> bool:
        """Whether the main pool hands out a connection that answers within ``within_seconds``.

        The pool's own bound ends the wait, not a cancellation: cancelling psycopg in the
        middle of a statement sends a cancel request and waits for it, on a network that
        may be the black-holed one. (A pooled connection found dead on the way costs at
        most the dead-connection limit more; see app/store/connection_limits.py.)
        """
        try:
            async with self.pool.connection(timeout=within_seconds) as connection:
                await connection.execute(QUERIES["ping"])
        except psycopg.Error:
            return False
        return True

    async def applied_migrations(self) -> set[str]:
        """Names of the applied migrations (readiness)."""
        return {row["name"] for row in await self.fetch_all("applied_migrations")}

    async def fetch_one(self, query: str, **arguments: Any) -> Row | None:
        async with self._statement(query, arguments) as cursor:
            return await cursor.fetchone()

    async def fetch_all(self, query: str, **arguments: Any) -> list[Row]:
        async with self._statement(query, arguments) as cursor:
            return await cursor.fetchall()

    async def execute(self, query: str, **arguments: Any) -> int:
        """Run a statement; returns the number of rows it touched."""
        async with self._statement(query, arguments) as cursor:
            return cursor.rowcount

    @asynccontextmanager
    async def _statement(
        self, query: str, arguments: dict[str, Any]
    ) -> AsyncIterator[psycopg.AsyncCursor[Row]]:
        """One statement on a pooled connection, its results in the cursor.

        In a bound scope, BEGIN, the scope, the statement and COMMIT leave together and
        the results are read after the one round trip; without a scope, or on the
        scope's role pool, the statement commits on its own.
        """
        pool, enter_scope = self._route()
        with self._watched():
            async with (
                pool.connection() as connection,
                connection.cursor(row_factory=dict_row) as cursor,
            ):
                if not enter_scope:
                    await cursor.execute(QUERIES[query], arguments)
                else:
                    async with connection.pipeline(), connection.transaction():
                        await _enter_scope(Session(connection))
                        await cursor.execute(QUERIES[query], arguments)
                yield cursor


async def _autocommit(connection: psycopg.AsyncConnection[Any]) -> None:
    await connection.set_autocommit(True)


@dataclass(frozen=True)
class _SessionRole:
    role: RoleName

    async def configure(self, connection: psycopg.AsyncConnection[Any]) -> None:
        await connection.set_autocommit(True)
        await connection.execute(QUERIES["take_session_role"], {"role": self.role})


class _Liveness:
    """The pool's check: ping only connections that were idle for a while.

    It notes when it hands a connection out; the time since then is never shorter than
    the time since the connection came back, so skipping the ping when it is under
    :data:`PING_AFTER_IDLE_SECONDS` is safe. (Noting the return instead needs the pool's
    ``reset`` hook, which sends every returned connection through a background task.)
    """

    def __init__(self) -> None:
        self._taken_at: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = (
            weakref.WeakKeyDictionary()
        )

    async def check(self, connection: psycopg.AsyncConnection[Any]) -> None:
        taken_at = self._taken_at.get(connection)
        now = time.monotonic()
        if taken_at is None or now - taken_at > PING_AFTER_IDLE_SECONDS:
            await AsyncConnectionPool.check_connection(connection)
        self._taken_at[connection] = now


async def _enter_scope(session: Session) -> None:
    scope = _scope.get()
    if scope is not None:
        # Queued, not awaited: it reaches the server with BEGIN and the first statement.
        await session.connection.execute(
            QUERIES["enter_scope"], {"role": scope.role, "company_id": scope.company_id}
        )


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
