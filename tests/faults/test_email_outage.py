"""The mail server is down while deliveries fail for good: every failure is still
reported, once, in as many emails as there were grouping windows.

A real ``webhooks worker``, aiosmtpd stopped and started on the same port, and a
PostgreSQL owned by this module.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta

from tests.acceptance.processes import wait_until
from tests.faults.harness import (  # noqa: F401 -- the fixtures
    Stack,
    delivery_ids_in,
    owned_postgres_fixture,
    stack_fixture,
)
from tests.payloads import order_status_payload
from tests.receivers import Receiver, respond
from tests.smtp import ReceivedMail, SmtpTestServer

WINDOW = 2.0  # WEBHOOKS_EMAIL_WINDOW_SECONDS
FIRST_EMAIL_RETRY = 5.0  # app.delivery.notices: a failed send is retried after 5 s, then doubling


def windows(failures: list[datetime], window: float) -> int:
    """How many grouping windows the failure times span: a window opens at the first
    failure not in an earlier one and holds what fails within ``window`` seconds."""
    count, opened = 0, None
    for moment in sorted(failures):
        if opened is None or moment > opened + timedelta(seconds=window):
            count, opened = count + 1, moment
    return count


def body_of(mail: ReceivedMail) -> str:
    part = mail.message.get_body(preferencelist=("plain",))
    return str(part.get_content()) if part is not None else ""


def test_failures_during_an_smtp_outage_are_all_reported_once_it_is_back(
    stack: Stack,
) -> None:
    # given one subscription whose endpoint always fails, two attempts per delivery,
    # a 2 s grouping window, and no mail server
    count, burst = 50, 25
    with Receiver(default=respond(500)) as receiver, SmtpTestServer() as smtp:
        smtp.stop()
        stack.configure(
            WEBHOOKS_SMTP_URL=smtp.url,
            WEBHOOKS_EMAIL_WINDOW_SECONDS=WINDOW,
            WEBHOOKS_MAX_ATTEMPTS=2,
            WEBHOOKS_RETRY_INTERVAL_SECONDS=0.2,
            WEBHOOKS_POLL_INTERVAL_SECONDS=0.1,
            # a fairness cap above the burst, so that each burst fails all at once
            WEBHOOKS_WORKER_CONCURRENCY=150,
        )
        stack.company("acme")
        sub = stack.subscribe("acme", receiver.url_for("/down"))
        worker = stack.worker()

        # when 50 deliveries fail for good in two bursts, further apart than the window
        started = time.monotonic()
        stack.publish([(sub, order_status_payload(n=n)) for n in range(burst)])
        time.sleep(WINDOW + 1.5)
        stack.publish([(sub, order_status_payload(n=n)) for n in range(burst, count)])
        wait_until(
            lambda: stack.status_counts()["FAILED"] == count,
            timeout=30,
            message=worker.describe,
        )

        # ... and the mail server comes back only once every failure is in an email that
        # could not be sent, and the first email failed twice (for its own window, then
        # again when its retry opened the second window's email): from then on only the
        # retry of a failed send can get them out
        def all_stuck() -> bool:
            [row] = stack.sql(
                "SELECT (SELECT count(*) FROM failed_delivery_reports WHERE notice_id IS NULL)"
                " AS unclaimed, (SELECT max(send_attempts) FROM failure_notices) AS tries"
            )
            return bool(row["unclaimed"] == 0 and (row["tries"] or 0) >= 2)

        wait_until(all_stuck, timeout=30, message=worker.describe)
        smtp.start()
        back = time.monotonic()

        # then every failure arrives, once, grouped by window
        failed = {
            row["id"]: row["failed_at"]
            for row in stack.sql(
                "SELECT d.id::text AS id, r.created_at AS failed_at"
                " FROM deliveries d JOIN failed_delivery_reports r ON r.delivery_id = d.id"
            )
        }
        expected_emails = windows(list(failed.values()), WINDOW)
        smtp.wait_for(expected_emails, timeout=FIRST_EMAIL_RETRY * 4)
        arrived = time.monotonic() - back
        wait_until(lambda: stack.open_jobs() == 0, timeout=30, message=worker.describe)
        time.sleep(1.0)  # anything sent twice would show up now
        messages = smtp.messages

    reported = Counter(
        delivery_id for mail in messages for delivery_id in delivery_ids_in(body_of(mail))
    )
    notices = stack.sql(
        "SELECT count(*) AS n, bool_and(sent_at IS NOT NULL) AS sent FROM failure_notices"
    )
    spans = sorted(failed.values())
    print(
        f"\n{count} failures over {(spans[-1] - spans[0]).total_seconds():.1f} s with SMTP down;"
        f" {expected_emails} windows of {WINDOW:g} s -> {len(messages)} emails"
        f" ({[len(delivery_ids_in(body_of(mail))) for mail in messages]} deliveries each),"
        f" all there {arrived:.1f} s after SMTP came back;"
        f" {time.monotonic() - started:.0f} s in all"
    )
    assert len(failed) == count
    assert len(messages) == expected_emails == notices[0]["n"]
    assert notices[0]["sent"]
    assert set(reported) == set(failed)
    assert [key for key, n in reported.items() if n != 1] == []
    assert len({mail.message["Message-ID"] for mail in messages}) == len(messages)
