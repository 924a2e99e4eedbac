"""Row-level security: isolation holds even when a query forgets its company filter.

The API's transactions run as ``webhooks_api`` with the viewer's company set; these tests
run deliberately unfiltered SQL inside such a transaction and see only that company. The
publisher's and the worker's roles are held to what they need, column by column: SQL
run directly as the publisher's role cannot read a subscription's configuration or what
a receiver answered, whatever the application forgets to check.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg.types.json import Jsonb

from app.core.delivery_ordering import DeliveryOrdering
from app.domain.events import NewEvent
from app.domain.subscriptions import NewSubscription
from app.store.database import PUBLISHER_SCOPE, WORKER_SCOPE, RowScope, scoped
from app.store.services import Services
from tests.payloads import order_status_payload
from tests.service import Tenants, create_subscription_for, publish_event_with

# (The subscriptions are ordered per subject, so that their deliveries number subject queues.)
TENANT_TABLES = [
    "subscriptions",
    "events",
    "deliveries",
    "delivery_attempts",
    "api_keys",
    "subject_queues",
]


async def given_data_for_both(services: Services, tenants: Tenants) -> None:
    for company in (tenants.a, tenants.b):
        await create_subscription_for(
            services,
            company,
            NewSubscription(
                "ORDER_STATUS",
                "http://127.0.0.1:9/hook",
                "ops@example.com",
                ordering=DeliveryOrdering.PER_SUBJECT,
            ),
        )
        await publish_event_with(
            services, NewEvent(company, "ORDER_STATUS", order_status_payload(n=1))
        )
    async with services.db.transaction() as tx:
        await tx.connection.execute(
            "INSERT INTO delivery_attempts (delivery_id, cycle, number, company_id, started_at,"
            " duration_ms, succeeded) SELECT id, 1, 1, company_id, now(), 1, true FROM deliveries"
        )


async def unfiltered_company_ids(services: Services, table: str) -> set[str]:
    async with services.db.transaction() as tx:
        cursor = await tx.connection.execute(
            psycopg.sql.SQL("SELECT DISTINCT company_id FROM {}").format(
                psycopg.sql.Identifier(table)
            )
        )
        return {row[0] for row in await cursor.fetchall()}


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_an_unfiltered_query_as_company_a_sees_only_company_a(
    services: Services, tenants: Tenants, table: str
) -> None:
    await given_data_for_both(services, tenants)
    with scoped(RowScope("webhooks_api", tenants.a)):
        seen = await unfiltered_company_ids(services, table)
    assert seen == {tenants.a}


@pytest.mark.parametrize("table", ["subscriptions", "events", "deliveries"])
async def test_without_a_company_the_api_role_sees_nothing(
    services: Services, tenants: Tenants, table: str
) -> None:
    await given_data_for_both(services, tenants)
    with scoped(RowScope("webhooks_api", None)):
        assert await unfiltered_company_ids(services, table) == set()


async def test_company_a_cannot_write_a_row_for_company_b(
    services: Services, tenants: Tenants
) -> None:
    with (
        scoped(RowScope("webhooks_api", tenants.a)),
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"),
    ):
        async with services.db.transaction() as tx:
            await tx.connection.execute(
                "INSERT INTO events (company_id, webhook_key, payload) "
                "VALUES (%s, 'ORDER_STATUS', %s)",
                (tenants.b, Jsonb(order_status_payload())),
            )


async def test_the_publisher_reads_every_company_but_cannot_change_subscriptions(
    services: Services, tenants: Tenants
) -> None:
    await given_data_for_both(services, tenants)
    with scoped(PUBLISHER_SCOPE):
        assert await unfiltered_company_ids(services, "deliveries") == {tenants.a, tenants.b}
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            async with services.db.transaction() as tx:
                await tx.connection.execute("UPDATE subscriptions SET is_active = false")


async def test_the_api_role_cannot_disable_the_policies(
    services: Services, tenants: Tenants
) -> None:
    """The role is not a superuser and owns nothing: it cannot disable the policies."""
    with scoped(RowScope("webhooks_api", tenants.a)), pytest.raises(psycopg.errors.Error):
        async with services.db.transaction() as tx:
            await tx.connection.execute("ALTER TABLE events DISABLE ROW LEVEL SECURITY")


# Each role's reads of what is confidential to a company: its subscriptions'
# configuration and its receivers' answers. The COMPANY role reads its own; the worker
# needs all of it to send and to report; the publisher none of it.
CONFIDENTIAL_COLUMNS = {
    "subscriptions": [
        "callback_url",
        "notification_email",
        "api_key_params",
        "headers",
        "signing_secret",
        "previous_signing_secret",
        "previous_secret_expires_at",
        "description",
        "deactivated_reason",
        "filter",
        "max_deliveries_per_second",
    ],
    "delivery_attempts": ["response_body", "error", "url"],
}
# What the publisher does read: what fan-out matches (a filter in its compiled form
# only), and delivery statuses.
PUBLISHER_COLUMNS = {
    "subscriptions": [
        *("id", "company_id", "webhook_key", "is_active", "deleted_at", "created_at"),
        "filter_path",
        "ordering",
    ],
    "subject_queues": ["subscription_id", "subject", "last_sequence", "open_count"],
    "delivery_attempts": ["delivery_id", "cycle", "number", "started_at", "response_status"],
    "deliveries": ["id", "status", "attempt_count", "last_response_status", "completed_at"],
    "events": ["id", "company_id", "payload", "body"],
}
ROLES = {
    "company": RowScope("webhooks_api", "company-a"),
    "worker": WORKER_SCOPE,
    "publisher": PUBLISHER_SCOPE,
}
READS_CONFIDENTIAL = {"company": True, "worker": True, "publisher": False}


async def read_column(services: Services, table: str, column: str) -> list[object]:
    """Every value of one column, by SQL run as the bound scope's role (no filter)."""
    async with services.db.transaction() as tx:
        cursor = await tx.connection.execute(
            psycopg.sql.SQL("SELECT {} FROM {}").format(
                psycopg.sql.Identifier(column), psycopg.sql.Identifier(table)
            )
        )
        return [row[0] for row in await cursor.fetchall()]


@pytest.mark.parametrize(
    ("table", "column"),
    [(table, column) for table, columns in CONFIDENTIAL_COLUMNS.items() for column in columns],
)
@pytest.mark.parametrize("role", list(ROLES))
async def test_only_the_company_and_the_worker_read_configuration_and_answers(
    services: Services, tenants: Tenants, role: str, table: str, column: str
) -> None:
    # Given both companies' subscriptions, events, deliveries and attempts
    await given_data_for_both(services, tenants)
    assert tenants.a == ROLES["company"].company_id

    # When SQL reads the column directly as the role
    with scoped(ROLES[role]):
        if READS_CONFIDENTIAL[role]:
            # Then the company and the worker read it
            assert await read_column(services, table, column)
        else:
            # Then the publisher's role is refused by PostgreSQL itself
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                await read_column(services, table, column)


@pytest.mark.parametrize("table", list(CONFIDENTIAL_COLUMNS))
async def test_the_publishers_role_cannot_read_whole_rows_of_configuration_or_answers(
    services: Services, tenants: Tenants, table: str
) -> None:
    await given_data_for_both(services, tenants)
    with scoped(PUBLISHER_SCOPE), pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with services.db.transaction() as tx:
            await tx.connection.execute(
                psycopg.sql.SQL("SELECT * FROM {}").format(psycopg.sql.Identifier(table))
            )


@pytest.mark.parametrize(
    ("table", "column"),
    [(table, column) for table, columns in PUBLISHER_COLUMNS.items() for column in columns],
)
async def test_the_publishers_role_reads_what_publishing_and_statuses_need(
    services: Services, tenants: Tenants, table: str, column: str
) -> None:
    await given_data_for_both(services, tenants)
    with scoped(PUBLISHER_SCOPE):
        assert len(await read_column(services, table, column)) >= 2  # both companies' rows


@pytest.mark.parametrize(
    ("role", "allowed"), [("company", False), ("publisher", False), ("worker", True)]
)
async def test_only_the_worker_reads_and_moves_a_subscriptions_pacing(
    services: Services, tenants: Tenants, role: str, allowed: bool
) -> None:
    # Given a subscription's pacing row (its next free slot), as the worker keeps it
    await given_data_for_both(services, tenants)
    async with services.db.pool.connection() as connection:
        await connection.execute(
            "INSERT INTO subscription_pacing SELECT id, 1, now() FROM subscriptions LIMIT 1"
        )

    # When SQL reads and moves it directly as the role
    async def read_and_move() -> None:
        async with services.db.transaction() as tx:
            await tx.connection.execute("SELECT next_slot FROM subscription_pacing")
            await tx.connection.execute(
                "UPDATE subscription_pacing SET next_slot = now() + interval '1 hour'"
            )

    # Then only the worker may: a company or the publisher could stall another's deliveries
    with scoped(ROLES[role]):
        if allowed:
            await read_and_move()
        else:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                await read_and_move()


async def test_the_api_role_forgets_only_its_own_companys_pacing(
    services: Services, tenants: Tenants
) -> None:
    # Given a pacing row for each company's subscription, as the worker keeps them
    await given_data_for_both(services, tenants)
    async with services.db.pool.connection() as connection:
        await connection.execute(
            "INSERT INTO subscription_pacing SELECT id, 1, now() + interval '1 hour'"
            " FROM subscriptions"
        )

    # When company A's role deletes every pacing row it can, with no filter of its own
    with scoped(RowScope("webhooks_api", tenants.a)):
        async with services.db.transaction() as tx:
            cursor = await tx.connection.execute(
                "DELETE FROM subscription_pacing RETURNING subscription_id"
            )
            deleted = len(await cursor.fetchall())

    # Then only its own went (a rate change restarts its pacing); company B's is kept
    async with services.db.pool.connection() as connection:
        cursor = await connection.execute(
            "SELECT s.company_id FROM subscription_pacing p"
            " JOIN subscriptions s ON s.id = p.subscription_id"
        )
        kept = [row[0] for row in await cursor.fetchall()]
    assert (deleted, kept) == (1, [tenants.b])


@pytest.mark.parametrize(
    ("scope", "webhook", "allowed"),
    [
        (WORKER_SCOPE, "DELIVERY_FAILED", True),
        (WORKER_SCOPE, "SUBSCRIPTION_RECOVERED", True),
        (WORKER_SCOPE, "ORDER_STATUS", False),
        (PUBLISHER_SCOPE, "DELIVERY_FAILED", False),
        (PUBLISHER_SCOPE, "ORDER_STATUS", True),
    ],
    ids=[
        "worker-operator-event",
        "worker-other-operator-event",
        "worker-order-status",
        "publisher-operator-event",
        "publisher-order-status",
    ],
)
async def test_only_the_worker_writes_operator_events_and_nothing_else(
    services: Services, tenants: Tenants, scope: RowScope, webhook: str, allowed: bool
) -> None:
    # When SQL inserts an event and a delivery of it directly as the role
    await given_data_for_both(services, tenants)

    async def insert() -> None:
        async with services.db.transaction() as tx:
            await tx.connection.execute(
                "WITH e AS (INSERT INTO events (company_id, webhook_key, payload)"
                " VALUES (%(company)s, %(webhook)s, '{}') RETURNING id)"
                " INSERT INTO deliveries (webhook_id, company_id, event_id, subscription_id,"
                " webhook_key, max_attempts)"
                " SELECT 'msg_forged', %(company)s, e.id, s.id, %(webhook)s, 1"
                " FROM e, subscriptions s WHERE s.company_id = %(company)s",
                {"company": tenants.a, "webhook": webhook},
            )

    # Then the worker may write operator events only (it emits them), the order system
    # any event but those (a forged DELIVERY_FAILED would be believed)
    with scoped(scope):
        if allowed:
            await insert()
        else:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                await insert()
