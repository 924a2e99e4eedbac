"""A slow mail server must not slow deliveries: email jobs hold no database connection
while SMTP talks, and a worker runs only a few of them at once.

A real ``webhooks worker`` with a deliberately small connection pool, aiosmtpd answering
each step of the conversation seconds late, real receivers, and a PostgreSQL owned by
this module. The healthy subscription's latency is measured twice in the same test:
alone, then while failure emails crawl through the slow server.
"""

from __future__ import annotations

import time

from tests.acceptance.processes import wait_until
from tests.faults.harness import (  # noqa: F401 -- the fixtures
    Published,
    Stack,
    owned_postgres_fixture,
    percentile,
    stack_fixture,
    summary,
)
from tests.payloads import order_status_payload
from tests.receivers import Receiver, RecordedRequest, respond
from tests.smtp import SmtpTestServer

STEP_DELAY = 1.5  # EHLO, MAIL, RCPT and DATA each answered this late: ~6 s an email
SLOTS = 6  # WEBHOOKS_WORKER_CONCURRENCY: fewer than the emails due
FAILING = 8  # subscriptions whose one delivery fails for good, each one email
HEALTHY = 40  # deliveries measured in each phase
POOL = 2  # WEBHOOKS_DB_POOL_MAX_SIZE: fewer connections than emails due
EMAIL_SLOTS = 2  # WEBHOOKS_EMAIL_CONCURRENCY


def latencies(published: list[Published], requests: list[RecordedRequest]) -> list[float]:
    """Publish -> arrival, per delivery, for the deliveries in ``published``."""
    at = {p.webhook_id: p.published_at for p in published}
    return [
        request.received_at - at[request.header("webhook-id") or ""]
        for request in requests
        if (request.header("webhook-id") or "") in at
    ]


def test_a_slow_mail_server_does_not_slow_healthy_deliveries(stack: Stack) -> None:
    # given a worker with 6 slots whose pools hold 2 connections, a mail server
    # answering each step 1.5 s late, eight subscriptions whose endpoint fails at once
    # (one attempt, no grouping window) and one healthy subscription
    with Receiver() as receiver, SmtpTestServer(step_delay=STEP_DELAY) as smtp:
        receiver.script("/down", respond(500))
        stack.configure(
            WEBHOOKS_SMTP_URL=smtp.url,
            WEBHOOKS_DB_POOL_MAX_SIZE=POOL,
            WEBHOOKS_EMAIL_CONCURRENCY=EMAIL_SLOTS,
            WEBHOOKS_MAX_ATTEMPTS=1,
            WEBHOOKS_EMAIL_WINDOW_SECONDS=0,
            WEBHOOKS_POLL_INTERVAL_SECONDS=0.1,
            WEBHOOKS_WORKER_CONCURRENCY=SLOTS,
        )
        stack.company("quickco")
        quick = stack.subscribe("quickco", receiver.url_for("/quick"))
        failing = []
        for number in range(FAILING):
            stack.company(f"down-{number}")
            failing.append(stack.subscribe(f"down-{number}", receiver.url_for("/down")))
        worker = stack.worker()

        # when healthy deliveries are measured alone ...
        alone = stack.run(
            stack.publish_async(
                [(quick, order_status_payload(n=n)) for n in range(HEALTHY)], pace=0.05
            )
        )
        receiver.wait_for(HEALTHY, timeout=30, path="/quick")

        # ... then again while every failing subscription's email is due and the first
        # ones are in the middle of their slow SMTP conversations
        stack.publish([(sub, order_status_payload(fail=True)) for sub in failing])
        wait_until(
            lambda: stack.status_counts()["FAILED"] == FAILING,
            timeout=30,
            message=worker.describe,
        )
        time.sleep(STEP_DELAY)
        emails_before = len(smtp.messages)
        beside = stack.run(
            stack.publish_async(
                [(quick, order_status_payload(n=n)) for n in range(HEALTHY, 2 * HEALTHY)], pace=0.05
            )
        )
        quick_requests = receiver.wait_for(2 * HEALTHY, timeout=60, path="/quick")
        emails_during = len(smtp.messages) - emails_before

        # and finally every email still arrives, once each
        smtp.wait_for(FAILING, timeout=FAILING * 4 * STEP_DELAY * 3)
        wait_until(lambda: stack.open_jobs() == 0, timeout=60, message=worker.describe)
        time.sleep(1.0)  # anything sent twice would show up now
        mails = smtp.messages

    before = latencies(alone, quick_requests)
    during = latencies(beside, quick_requests)
    print(
        f"\nhealthy deliveries alone: {summary(before)}; beside {FAILING} failure emails"
        f" through an SMTP server answering each step {STEP_DELAY:g} s late"
        f" ({emails_during} finished meanwhile, at most {smtp.most_at_once} at once):"
        f" {summary(during)}"
    )
    # then the healthy deliveries kept their latency (the old code held a pooled
    # connection through each SMTP conversation: seconds per delivery here), because
    # at most two emails were being sent at once
    assert smtp.most_at_once <= EMAIL_SLOTS
    assert len(before) == len(during) == HEALTHY
    assert percentile(during, 0.9) < max(1.0, 5 * percentile(before, 0.9))
    assert max(during) < 2.0
    # and no email was lost or sent twice
    assert len(mails) == FAILING
    assert len({str(mail.message["Message-ID"]) for mail in mails}) == FAILING
    [notices] = stack.sql(
        "SELECT count(*) AS n, bool_and(sent_at IS NOT NULL) AS sent FROM failure_notices"
    )
    assert notices == {"n": FAILING, "sent": True}
