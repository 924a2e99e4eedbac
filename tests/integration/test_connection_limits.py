"""Every connection the service opens carries its limits; the server enforces its part."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from psycopg import errors

from app.core.outages import is_unavailable
from app.store.database import PUBLISHER_SCOPE, WORKER_SCOPE, scoped
from app.store.services import open_services
from tests.service import make_settings


async def test_pooled_connections_carry_the_keepalives_and_the_server_side_timeouts(
    database_url: str, tmp_path: Path
) -> None:
    # given the services opened with a dead-after budget of 4 s and 20 s statements
    settings = make_settings(
        database_url, tmp_path, db_dead_after_seconds=4, db_statement_timeout_seconds=20
    )
    async with open_services(settings) as services:
        for scope in (None, WORKER_SCOPE, PUBLISHER_SCOPE):
            with scoped(scope):
                # when a connection of each pool is asked what it runs with
                async with services.db.autocommit() as session:
                    parameters = session.connection.info.get_parameters()
                    shown = await (
                        await session.connection.execute("SHOW statement_timeout")
                    ).fetchone()
                    idle = await (
                        await session.connection.execute("SHOW idle_in_transaction_session_timeout")
                    ).fetchone()

            # then the client side has the keepalives and the user timeout, the server
            # side the statement and idle-transaction timeouts
            assert parameters["keepalives"] == "1", scope
            assert parameters["keepalives_idle"] == "2", scope
            assert parameters["tcp_user_timeout"] == "4000", scope
            assert (shown, idle) == (("20s",), ("40s",)), scope


async def test_a_statement_over_the_timeout_is_cut_by_the_server_as_an_outage(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path, db_statement_timeout_seconds=0.3)
    async with open_services(settings) as services:
        began = time.monotonic()
        with pytest.raises(errors.QueryCanceled) as cut:
            async with services.db.autocommit() as session:
                await session.connection.execute("SELECT pg_sleep(10)")
        took = time.monotonic() - began

    assert took < 5
    assert is_unavailable(cut.value)
