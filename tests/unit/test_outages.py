"""Outages: which database errors are a retryable "unavailable", and the resource alarm."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors
from psycopg_pool import PoolTimeout

from app.core.outages import ResourceAlarm, is_connection_lost, is_resource_shortage, is_unavailable


@pytest.mark.parametrize(
    "error",
    [
        errors.DiskFull(),  # 53100
        errors.OutOfMemory(),  # 53200
        errors.TooManyConnections(),  # 53300
        errors.InsufficientResources(),  # 53000
        errors.AdminShutdown(),  # 57P01
        errors.CannotConnectNow(),  # 57P03
        errors.QueryCanceled(),  # 57014: our statement_timeout
        errors.IdleInTransactionSessionTimeout(),  # 25P03
        errors.ConnectionFailure(),  # 08006
        psycopg.OperationalError("consuming input failed: server closed the connection"),
        PoolTimeout("couldn't get a connection after 10.00 sec"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_outages_are_unavailable(error: Exception) -> None:
    assert is_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        errors.UniqueViolation(),
        errors.ProgramLimitExceeded(),  # 54000: the statement, not the server
        errors.InsufficientPrivilege(),
        errors.DataError(),
        ValueError("not from the database"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_bugs_and_bad_input_are_not(error: Exception) -> None:
    assert not is_unavailable(error)


def test_an_outage_raised_from_is_found_through_the_cause() -> None:
    try:
        try:
            raise errors.DiskFull()
        except errors.DiskFull as shortage:
            raise RuntimeError("publishing failed") from shortage
    except RuntimeError as wrapped:
        assert is_unavailable(wrapped)


def test_only_class_53_is_a_resource_shortage() -> None:
    assert is_resource_shortage(errors.TooManyConnections())
    assert not is_resource_shortage(errors.AdminShutdown())
    assert not is_resource_shortage(PoolTimeout())


def test_the_alarm_holds_for_its_time_after_the_last_shortage() -> None:
    now = [100.0]
    alarm = ResourceAlarm(hold_seconds=15.0, clock=lambda: now[0])
    assert not alarm.raised

    alarm.note(errors.UniqueViolation())
    assert not alarm.raised

    alarm.note(errors.DiskFull())
    now[0] += 14.9
    assert alarm.raised
    alarm.note(errors.DiskFull())  # another one starts the hold again
    now[0] += 14.9
    assert alarm.raised
    now[0] += 0.2
    assert not alarm.raised


@pytest.mark.parametrize(
    "error",
    [
        errors.AdminShutdown(),  # 57P01
        errors.CannotConnectNow(),  # 57P03
        errors.ConnectionFailure(),  # 08006
        psycopg.OperationalError("consuming input failed: server closed the connection"),
        psycopg.InterfaceError("the connection is closed"),
        PoolTimeout("couldn't get a connection after 10.00 sec"),
        ConnectionResetError(),
    ],
)
def test_a_lost_connection_is_one(error: Exception) -> None:
    assert is_connection_lost(error)


@pytest.mark.parametrize(
    "error",
    [
        errors.QueryCanceled(),  # 57014: the statement ran, and our timeout cut it
        errors.DiskFull(),  # 53100: the server answered
        errors.LockNotAvailable(),  # 55P03
        errors.UniqueViolation(),
    ],
)
def test_a_statement_that_failed_on_a_live_connection_is_not_a_lost_connection(
    error: Exception,
) -> None:
    assert not is_connection_lost(error)
