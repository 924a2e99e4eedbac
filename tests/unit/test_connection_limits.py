"""Connection limits: the libpq parameters that bound every wait on the database."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict

from app.store.connection_limits import ConnectionLimits, limited_conninfo

URL = "postgresql://app:pw@db.internal:5433/webhooks?sslmode=require"


def test_the_limits_become_connect_keepalive_user_and_server_side_timeouts() -> None:
    # given a connection declared dead after 10 s without an answer
    limits = ConnectionLimits(connect_seconds=5, dead_after_seconds=10, statement_seconds=30)

    # when they become libpq parameters
    parameters = limits.parameters()

    # then keepalive probes start after half of it, three of them fill the rest, and
    # unacknowledged data gives up after all of it
    assert parameters == {
        "connect_timeout": "5",
        "keepalives": "1",
        "keepalives_idle": "5",
        "keepalives_interval": "2",
        "keepalives_count": "3",
        "tcp_user_timeout": "10000",
        "options": "-c statement_timeout=30000 -c idle_in_transaction_session_timeout=60000",
    }


def test_the_shortest_budget_still_gives_whole_second_keepalives() -> None:
    parameters = ConnectionLimits(dead_after_seconds=2).parameters()

    assert (parameters["keepalives_idle"], parameters["keepalives_interval"]) == ("1", "1")
    assert parameters["tcp_user_timeout"] == "2000"


def test_no_statement_timeout_sets_no_server_options() -> None:
    assert "options" not in ConnectionLimits(statement_seconds=0).parameters()


def test_the_conninfo_keeps_the_url_and_adds_the_limits() -> None:
    conninfo = conninfo_to_dict(limited_conninfo(URL, ConnectionLimits()))

    assert conninfo["host"] == "db.internal"
    assert conninfo["port"] == "5433"
    assert conninfo["password"] == "pw"
    assert conninfo["sslmode"] == "require"
    assert conninfo["tcp_user_timeout"] == "10000"


def test_what_the_url_sets_wins_and_its_options_come_after_ours() -> None:
    url = "postgresql://app@db/webhooks?connect_timeout=9&options=-c%20statement_timeout%3D0"

    conninfo = conninfo_to_dict(limited_conninfo(url, ConnectionLimits()))

    assert conninfo["connect_timeout"] == "9"
    # PostgreSQL applies -c settings in order: the URL's statement_timeout=0 wins.
    assert str(conninfo["options"]).endswith("-c statement_timeout=0")
    assert str(conninfo["options"]).startswith("-c statement_timeout=30000")
