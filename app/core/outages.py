"""Outages: which database errors mean "try again shortly", and a memory of the recent ones.

A caller cannot fix these by changing its request, and they pass: the server is
unreachable, restarting or shutting down (class 08, 57P01-57P03, a lost connection), out
of a resource (class 53: disk full 53100, out of memory 53200, too many connections
53300), a statement cut by our own ``statement_timeout`` (57014), or no pooled connection
in time (``PoolTimeout``). The API answers all of them alike: HTTP 503, GraphQL
``extensions.code = UNAVAILABLE`` and ``Retry-After``, never an "Unexpected error".

Class 53 is special for readiness: the server still answers ``SELECT 1`` while it cannot
write, so a probe alone would stay green. :class:`ResourceAlarm` remembers when a
statement last failed for lack of resources; readiness reports not ready until
:data:`RESOURCE_ALARM_SECONDS` have passed without another.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
from psycopg_pool import PoolTimeout

RETRY_AFTER_SECONDS = 5
UNAVAILABLE_MESSAGE = "The service is temporarily unavailable; try again shortly."
RESOURCE_ALARM_SECONDS = 15.0

RESOURCES_CLASS = "53"
CONNECTION_CLASS = "08"
# admin_shutdown, crash_shutdown, cannot_connect_now: the server is going or not there yet.
CONNECTION_LOST_STATES = frozenset({"57P01", "57P02", "57P03"})
# query_canceled (statement_timeout), idle_in_transaction_session_timeout,
# idle_session_timeout.
TIMED_OUT_STATES = frozenset({"57014", "25P03", "57P05"})


def is_connection_lost(error: BaseException) -> bool:
    """Whether ``error`` itself says there is no connection to the database: none could be
    had (``PoolTimeout``), it broke (class 08, or a client-side error with no SQLSTATE) or
    the server is shutting down or starting. A statement that did run and failed (even for
    lack of resources or time) is not one: the connection was there."""
    if isinstance(error, PoolTimeout | psycopg.InterfaceError | OSError):
        return True
    if isinstance(error, psycopg.OperationalError):
        state = error.sqlstate
        return state is None or state[:2] == CONNECTION_CLASS or state in CONNECTION_LOST_STATES
    return False


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` (or what it was raised from) says the database is unavailable:
    the connection is lost, or the server is out of resources, or our own timeouts cut
    the statement."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PoolTimeout):
            return True
        if isinstance(current, psycopg.Error):
            if isinstance(current, psycopg.OperationalError) and is_connection_lost(current):
                return True
            state = current.sqlstate or ""
            return state[:2] == RESOURCES_CLASS or state in TIMED_OUT_STATES
        current = current.__cause__ or current.__context__
    return False


def is_resource_shortage(error: BaseException) -> bool:
    """Whether ``error`` is SQLSTATE class 53 (insufficient resources)."""
    return isinstance(error, psycopg.Error) and (error.sqlstate or "")[:2] == RESOURCES_CLASS


class ResourceAlarm:
    """When a statement last failed for lack of resources on the server (class 53)."""

    def __init__(
        self,
        hold_seconds: float = RESOURCE_ALARM_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hold_seconds = hold_seconds
        self._clock = clock
        self._raised_at: float | None = None

    def note(self, error: BaseException) -> None:
        """Remember ``error`` if it is a resource shortage."""
        if is_resource_shortage(error):
            self._raised_at = self._clock()

    @property
    def raised(self) -> bool:
        """Whether a shortage was seen within the last ``hold_seconds``."""
        return self._raised_at is not None and self._clock() - self._raised_at < self.hold_seconds
