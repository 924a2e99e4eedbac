"""A worker paused (SIGSTOP) long enough to be given up for dead, then resumed (SIGCONT).

Meanwhile another worker started, pruned the paused one's registration as stalled, re-ran
its jobs and finished them. The resumed worker must rejoin as if nothing happened: no
crash on its pruned worker id, no errors about jobs another worker finished, nothing
delivered twice into the record and nothing lost. Real ``webhooks worker`` processes.
"""

from __future__ import annotations

import signal
import time

from tests.faults.harness import (  # noqa: F401 -- the fixtures
    Stack,
    owned_postgres_fixture,
    stack_fixture,
)
from tests.payloads import order_status_payload
from tests.receivers import Receiver, respond

STALLED_AFTER_SECONDS = 5.0  # the smallest WEBHOOKS_STALLED_AFTER_SECONDS
PAUSE_SECONDS = STALLED_AFTER_SECONDS + 3
EVENTS = 10
# What a worker must not log after it was resumed.
CRASH_SIGNS = (
    "Task exception was never retrieved",
    "ForeignKeyViolation",
    "worker crashed",
    "stopped on its own",
)


def test_a_worker_resumed_after_being_pruned_as_stalled_rejoins_cleanly(stack: Stack) -> None:
    # given a worker with attempts in flight to a slow receiver
    stack.configure(WEBHOOKS_STALLED_AFTER_SECONDS=STALLED_AFTER_SECONDS)
    stack.company("acme")
    with Receiver() as receiver:
        receiver.script("/hook", respond(200, delay=1.0))
        sub = stack.subscribe("acme", receiver.url_for("/hook"))
        paused = stack.worker("paused")
        stack.publish([(sub, order_status_payload(n=n)) for n in range(EVENTS)])
        receiver.wait_for(EVENTS, timeout=20)
        [registration] = stack.sql("SELECT id FROM procrastinate_workers")

        # when it is paused past the stalled timeout, another worker starts (pruning the
        # paused one's registration), re-runs the stalled jobs and delivers them
        paused.send(signal.SIGSTOP)
        try:
            time.sleep(PAUSE_SECONDS)
            other = stack.worker("other", listening=None)
            stack.wait_settled(EVENTS, timeout=40, final=("SUCCEEDED",))
            pruned = not stack.sql(
                "SELECT 1 FROM procrastinate_workers WHERE id = %(id)s", id=registration["id"]
            )
        finally:
            # and then the paused worker is resumed
            paused.send(signal.SIGCONT)
        log_before = len(paused.log())
        time.sleep(3.0)  # its heartbeats, fetches and the stale attempts' endings run
        stack.publish([(sub, order_status_payload(n=n)) for n in range(EVENTS, 2 * EVENTS)])
        counts = stack.wait_settled(2 * EVENTS, timeout=40, final=("SUCCEEDED",))
        stack.wait_for_listeners(2, paused, timeout=10)
        resumed_log = paused.log()[log_before:]

    assert pruned, "the other worker did not prune the paused one's registration"
    # then it rejoined without a crash or an error about the jobs the other one finished
    assert counts == {"SUCCEEDED": 2 * EVENTS}
    assert [sign for sign in CRASH_SIGNS if sign in resumed_log] == [], "\n".join(
        line[:200] for line in resumed_log.splitlines() if line[:2].isdigit()
    )
    assert paused.returncode is None and other.returncode is None
    # and every delivery has exactly its one successful attempt on record
    assert stack.attempt_gaps() == []
    rows = stack.sql("SELECT count(*) AS n FROM delivery_attempts")
    assert rows[0]["n"] == 2 * EVENTS
