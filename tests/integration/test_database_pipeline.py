"""Transactions in pipeline mode (``transaction(pipeline=True)``, publishEvent's): statements
sent ahead travel together, and the transaction stays all or nothing."""

from __future__ import annotations

import psycopg
import pytest

from app.store.database import PUBLISHER_SCOPE, scoped
from app.store.services import Services


async def test_statements_sent_ahead_are_answered_in_order_in_the_scope_s_role(
    services: Services,
) -> None:
    with scoped(PUBLISHER_SCOPE):
        async with services.db.transaction(pipeline=True) as tx:
            missing = await tx.send("get_company", id="no-such-company")
            cursor = await tx.connection.execute("SELECT current_user")
            assert await missing.row() is None
            assert await cursor.fetchone() == (PUBLISHER_SCOPE.role,)


async def test_a_statement_sent_ahead_that_fails_raises_and_the_transaction_writes_nothing(
    services: Services,
) -> None:
    """Even what was answered before the failure (a pipeline's sync commits nothing)."""
    key = {
        "prefix": "pwk_pipeline1",
        "key_hash": b"x" * 32,
        "role": "PUBLISHER",
        "company_id": None,
    }
    with pytest.raises(psycopg.errors.UniqueViolation):
        async with services.db.transaction(pipeline=True) as tx:
            first = await tx.send("insert_api_key", **key)
            await tx.execute("get_company", id="no-such-company")  # syncs the pipeline
            assert await first.row() is not None
            await tx.send("insert_api_key", **key)  # the same prefix again
            await tx.fetch_one("get_api_key_by_prefix", prefix=key["prefix"])
    assert await services.db.fetch_one("get_api_key_by_prefix", prefix=key["prefix"]) is None
