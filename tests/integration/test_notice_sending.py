"""Sending a failure notice: claim, commit, talk to SMTP with no connection held, record.

And the limits around it: a sender that dies mid-send leaves a lease that runs out (the
notice is sent then, once, with the same Message-ID), and each address gets a bounded
number of notices; over it the failures wait and fold into the next email.

The email job's work (``app.delivery.notices.send_notices``) is run here directly, in the worker's
scope, against a real SMTP server (aiosmtpd); the worker itself runs the deliveries,
with a grouping window long enough that its own email jobs stay queued.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest

from app.delivery.mailer import SmtpMailer
from app.delivery.notices import NoticeRun, send_notices
from app.store.database import WORKER_SCOPE, scoped
from tests.delivery import (
    OpenService,
    Service,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
)
from tests.receivers import Receiver, respond
from tests.smtp import SmtpTestServer

LONG_WINDOW = 3600.0  # the worker's own email jobs wait an hour: the test runs the sends


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


async def send(service: Service, mailer: SmtpMailer, subscription_id: str) -> NoticeRun:
    with scoped(WORKER_SCOPE):
        return await send_notices(service.services, mailer, subscription_id)


async def fail_one_delivery_each(service: Service, count: int) -> None:
    event = await service.publish_event()
    assert len(event["deliveries"]) == count
    for delivery in event["deliveries"]:
        await service.wait_for_status(delivery["id"], "FAILED")


async def test_no_transaction_stays_open_while_the_mail_server_talks(
    open_service: OpenService,
) -> None:
    # given a failed delivery and a mail server answering each step 1 s late
    with (
        Receiver(default=respond(500)) as receiver,
        SmtpTestServer(step_delay=1.0) as smtp,
    ):
        service = await open_service(
            smtp_url=smtp.url, max_attempts=1, email_window_seconds=LONG_WINDOW
        )
        subscription = await service.subscribe(receiver.url_for("/down"))
        await fail_one_delivery_each(service, 1)

        # when the notice is being sent
        sending = asyncio.create_task(send(service, SmtpMailer(smtp.url), subscription.id))
        await asyncio.sleep(1.5)
        open_transactions = await service.sql(
            "SELECT count(*) AS n FROM pg_stat_activity"
            " WHERE datname = current_database() AND state LIKE 'idle in transaction%%'"
            " AND now() - state_change > interval '0.5 seconds'"
        )
        in_conversation = not sending.done()
        run = await sending

    # then no session sat in an open transaction during the conversation, and it went out
    assert in_conversation
    assert open_transactions == [{"n": 0}]
    assert run.sent == 1
    assert len(smtp.messages) == 1


async def test_a_sender_that_dies_mid_send_leaves_a_lease_that_runs_out(
    open_service: OpenService,
) -> None:
    with (
        Receiver(default=respond(500)) as receiver,
        SmtpTestServer(step_delay=0.5) as smtp,
    ):
        service = await open_service(
            smtp_url=smtp.url, max_attempts=1, email_window_seconds=LONG_WINDOW
        )
        subscription = await service.subscribe(receiver.url_for("/down"))
        await fail_one_delivery_each(service, 1)
        mailer = SmtpMailer(smtp.url)

        # given a sender that died in the middle of the SMTP conversation
        dying = asyncio.create_task(send(service, mailer, subscription.id))
        await asyncio.sleep(0.7)
        dying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dying

        # when another job runs while the lease holds (the grouping window's own job
        # gone), then after it ran out
        await service.sql("DELETE FROM procrastinate_jobs WHERE queue_name = 'notices'")
        while_leased = await send(service, mailer, subscription.id)
        retry_jobs = await service.sql(
            "SELECT scheduled_at BETWEEN now() AND now() + interval '3 seconds' AS looks_again"
            " FROM procrastinate_jobs WHERE queue_name = 'notices' AND status = 'todo'"
            " AND args ->> 'subscription_id' = %(id)s",
            id=subscription.id,
        )
        await service.sql("UPDATE failure_notices SET leased_until = now() - interval '1 second'")
        after = await send(service, mailer, subscription.id)
        again = await send(service, mailer, subscription.id)

    # then the leased notice was left alone, a job comes back within seconds to look
    # again (until the lease ends), and the notice went out once when it had, with its
    # stable Message-ID
    assert while_leased.sent == 0
    assert retry_jobs == [{"looks_again": True}]
    assert (after.sent, again.sent) == (1, 0)
    [mail] = smtp.messages
    [notice] = await service.sql("SELECT sent_at, leased_until FROM failure_notices")
    assert notice["sent_at"] is not None and notice["leased_until"] is None
    assert str(mail.message["Message-ID"]).startswith("<fn-")


async def test_an_address_gets_a_bounded_number_of_emails_and_the_rest_fold_into_the_next(
    open_service: OpenService, smtp: SmtpTestServer
) -> None:
    # given at most 2 emails an hour to one address, and three subscriptions mailing it
    # (spelled differently: addresses are compared without case)
    service = await open_service(
        smtp_url=smtp.url,
        max_attempts=1,
        email_window_seconds=LONG_WINDOW,
        email_address_per_hour=2,
        email_address_per_day=10,
    )
    mailer = SmtpMailer(smtp.url)
    with Receiver(default=respond(500)) as receiver:
        subs = [
            await service.subscribe(receiver.url_for(f"/down{n}"), notification_email=email)
            for n, email in enumerate(
                ["victim@example.org", "Victim@example.org", "VICTIM@example.org"]
            )
        ]
        await fail_one_delivery_each(service, 3)

        # when each subscription's email job runs
        runs = [await send(service, mailer, sub.id) for sub in subs]
        held = await service.sql(
            "SELECT count(*) AS n FROM failed_delivery_reports WHERE notice_id IS NULL"
        )
        jobs = await service.sql(
            "SELECT scheduled_at > now() + interval '50 minutes' AS in_an_hour"
            " FROM procrastinate_jobs WHERE queue_name = 'notices' AND status = 'todo'"
            " AND args ->> 'subscription_id' = %(id)s",
            id=subs[2].id,
        )
        # ... and another failure of the held subscription comes in, then the hour passes
        await fail_one_delivery_each(service, 3)
        await service.sql("UPDATE failure_notices SET created_at = created_at - interval '61 min'")
        last = await send(service, mailer, subs[2].id)

    # then two emails went out at once, the third waited for the hour with its failures
    # unreported, and then one email reported both of its failures
    assert [run.sent for run in runs] == [1, 1, 0]
    assert runs[2].postponed_until is not None
    assert held == [{"n": 1}]
    assert {"in_an_hour": True} in jobs
    assert last.sent == 1
    mails = smtp.messages
    assert len(mails) == 3
    assert mails[2].message["Subject"].startswith("[PlanOmatic Webhooks] 2 deliveries")
