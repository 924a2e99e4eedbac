"""Soak: a mixed load for a while, with workers SIGKILLed now and then; nothing may be lost.

    .venv/bin/python -m tests.faults.soak --minutes 20 > /tmp/soak.log

It starts its own durable PostgreSQL (a scratch directory, deleted at the end), two
``webhooks worker`` processes, four receivers on 127.0.0.1 (healthy, flaky, slow, dead)
and an SMTP server, then publishes events at a steady rate. One worker ("victim") is
SIGKILLed at random moments and restarted at once; the other ("steady") is never touched,
so its memory over the whole run shows whether a worker process leaks. After the load it
waits for everything to settle and prints a summary:

- published: events published (one delivery each); delivered: SUCCEEDED; failed: FAILED
- duplicates: extra copies of an attempt the receivers saw (same webhook-id and attempt
  number); only a killed worker's attempts in flight may repeat
- lost: deliveries not finished after the drain, SUCCEEDED deliveries no receiver ever
  answered 2xx, FAILED deliveries no email reported, attempt numbers skipped or
  recorded twice. Must be 0 (the exit status is 1 otherwise).
- the RSS of each worker process over time.

Not collected by pytest (no ``test_`` prefix); it reuses the fault tests' harness.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from app.domain.events import NewEvent
from app.store.services import open_services
from tests.acceptance.processes import Process
from tests.database import make_scratch_dir
from tests.faults.harness import OwnedPostgres, Stack, Sub, delivery_ids_in, duplicates
from tests.payloads import order_status_payload
from tests.receivers import (
    Receiver,
    RecordedRequest,
    Reply,
    hang,
    reset_connection,
    respond,
)
from tests.service import publish_event_with
from tests.smtp import SmtpTestServer

MIX = (("healthy", 0.5), ("flaky", 0.25), ("slow", 0.15), ("dead", 0.10))
SETTINGS = {
    "WEBHOOKS_RETRY_INTERVAL_SECONDS": 2,
    "WEBHOOKS_MAX_ATTEMPTS": 4,
    "WEBHOOKS_REQUEST_TIMEOUT_SECONDS": 2,
    "WEBHOOKS_POLL_INTERVAL_SECONDS": 0.5,
    "WEBHOOKS_STALLED_AFTER_SECONDS": 10,
    "WEBHOOKS_EMAIL_WINDOW_SECONDS": 10,
    "WEBHOOKS_WORKER_CONCURRENCY": 50,
}


@dataclass
class Replies:
    """Scripted, seeded misbehaviour per receiver path; remembers every 2xx it gave."""

    seed: int
    answered_ok: set[str] = field(default_factory=set)  # webhook-ids answered 2xx
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, kind: str):  # type: ignore[no-untyped-def]
        def reply(request: RecordedRequest) -> Reply:
            webhook_id = request.header("webhook-id") or ""
            rng = random.Random(f"{self.seed}:{webhook_id}:{request.header('webhook-attempt')}")
            roll = rng.random()
            chosen: Reply
            if kind == "healthy":
                chosen = respond(200, delay=rng.uniform(0.0, 0.05))
            elif kind == "flaky":
                chosen = (
                    respond(200)
                    if roll < 0.6
                    else respond(500)
                    if roll < 0.85
                    else reset_connection()
                )
            elif kind == "slow":
                chosen = respond(200, delay=1.5) if roll < 0.85 else hang(3.0)
            else:
                chosen = respond(500)
            # A reply slower than the request timeout is not a success, whatever it says.
            if chosen.kind == "respond" and 200 <= chosen.status < 300 and chosen.delay < 2:
                with self.lock:
                    self.answered_ok.add(webhook_id)
            return chosen

        return reply


def rss_mb(process: Process) -> float | None:
    try:
        status = Path(f"/proc/{process.pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


async def publish_load(
    stack: Stack, subs: list[tuple[Sub, float]], rate: float, until: float, seed: int
) -> list[str]:
    """Publish ``rate`` events a second until ``until`` (monotonic); returns event ids."""
    rng = random.Random(seed)
    weights = [weight for _, weight in subs]
    published: list[str] = []
    async with open_services(stack.settings()) as services:
        number = 0
        next_at = time.monotonic()
        while time.monotonic() < until:
            number += 1
            [(sub, _)] = rng.choices(subs, weights=weights)
            try:
                event = await publish_event_with(
                    services,
                    NewEvent(
                        sub.company_id,
                        "ORDER_STATUS",
                        order_status_payload(n=number),
                        subject=f"s-{number}",
                    ),
                )
                published.append(str(event.id))
            except Exception as error:  # keep publishing; say so
                print(f"publish failed: {error!r}", flush=True)
            next_at += 1 / rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    return published


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=10.0, help="events published per second")
    parser.add_argument("--kill-every", type=float, default=45.0, help="mean seconds between kills")
    parser.add_argument("--sample-every", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)

    root = make_scratch_dir("webhooks-soak-")
    owner = OwnedPostgres(root / "pg")
    smtp = SmtpTestServer()
    receivers = Receiver()
    replies = Replies(args.seed)
    stack: Stack | None = None
    try:
        owner.start()
        owner.prepare_template()
        stack = Stack(owner, owner.new_database(), root / "run")
        smtp.start()
        receivers.start()
        stack.configure(**SETTINGS, WEBHOOKS_SMTP_URL=smtp.url)
        subs: list[tuple[Sub, float]] = []
        for kind, weight in MIX:
            receivers.script(f"/{kind}", replies.script(kind))
            stack.company(kind)
            subs.append((stack.subscribe(kind, receivers.url_for(f"/{kind}")), weight))
        return run(stack, subs, receivers, replies, smtp, args)
    finally:
        if stack is not None:
            stack.cleanup()
        receivers.stop()
        smtp.stop()
        owner.close()
        shutil.rmtree(root, ignore_errors=True)


def run(
    stack: Stack,
    subs: list[tuple[Sub, float]],
    receivers: Receiver,
    replies: Replies,
    smtp: SmtpTestServer,
    args: argparse.Namespace,
) -> int:
    rng = random.Random(args.seed)
    steady = stack.worker("steady")
    victim = stack.worker("victim-0", listening=2)
    kills = 0
    started = time.monotonic()
    until = started + args.minutes * 60
    rss: dict[str, list[float]] = defaultdict(list)
    published: list[str] = []
    publisher = threading.Thread(
        target=lambda: published.extend(
            asyncio.run(publish_load(stack, subs, args.rate, until, args.seed))
        ),
        name="publisher",
    )
    publisher.start()
    print(
        f"soak: {args.minutes:g} min at {args.rate:g} events/s, mix {dict(MIX)},"
        f" a SIGKILL every ~{args.kill_every:g} s; settings {SETTINGS}",
        flush=True,
    )
    next_kill = started + rng.expovariate(1 / args.kill_every)
    next_sample = started
    while time.monotonic() < until:
        now = time.monotonic()
        if now >= next_kill:
            victim.kill()
            kills += 1
            victim = stack.worker(f"victim-{kills}", listening=None)
            next_kill = now + max(5.0, rng.expovariate(1 / args.kill_every))
        if now >= next_sample:
            sample(stack, steady, victim, rss, receivers, kills, started)
            next_sample = now + args.sample_every
        if steady.returncode is not None:
            print(steady.describe(), flush=True)
            return 1
        time.sleep(0.2)
    publisher.join()
    print(f"load over after {(time.monotonic() - started) / 60:.1f} min; draining", flush=True)
    drained = drain(stack, timeout=180)
    sample(stack, steady, victim, rss, receivers, kills, started)
    return report(stack, published, receivers, replies, smtp, kills, rss, drained, started)


def sample(
    stack: Stack,
    steady: Process,
    victim: Process,
    rss: dict[str, list[float]],
    receivers: Receiver,
    kills: int,
    started: float,
) -> None:
    counts = stack.status_counts()
    memory = {"steady": rss_mb(steady), "victim": rss_mb(victim)}
    for name, value in memory.items():
        if value is not None:
            rss[name].append(value)
    shown = ", ".join(
        f"{name} {value:.0f} MB" if value is not None else f"{name} -"
        for name, value in memory.items()
    )
    print(
        f"[{(time.monotonic() - started) / 60:5.1f} min] deliveries {sum(counts.values())}"
        f" (succeeded {counts['SUCCEEDED']}, failed {counts['FAILED']}, retrying"
        f" {counts['RETRYING']}, pending {counts['PENDING']}); requests"
        f" {len(receivers.requests)}, duplicates {sum(duplicates(receivers.requests).values())};"
        f" kills {kills}; RSS {shown}",
        flush=True,
    )


def drain(stack: Stack, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = stack.status_counts()
        if counts["PENDING"] + counts["RETRYING"] == 0 and stack.open_jobs() == 0:
            return True
        time.sleep(1)
    return False


def report(
    stack: Stack,
    published: list[str],
    receivers: Receiver,
    replies: Replies,
    smtp: SmtpTestServer,
    kills: int,
    rss: dict[str, list[float]],
    drained: bool,
    started: float,
) -> int:
    rows = stack.sql(
        "SELECT id::text AS id, webhook_id, status, event_id::text AS event FROM deliveries"
    )
    by_status: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_status[row["status"]].append(row)
    deliveries_of = Counter(row["event"] for row in rows)
    missing_deliveries = [event for event in published if deliveries_of[event] != 1]
    unfinished = [row for row in rows if row["status"] in ("PENDING", "RETRYING")]
    with replies.lock:
        answered_ok = set(replies.answered_ok)
    never_received = [row for row in by_status["SUCCEEDED"] if row["webhook_id"] not in answered_ok]
    reported: Counter[str] = Counter()
    for mail in smtp.messages:
        body = mail.message.get_body(preferencelist=("plain",))
        reported.update(delivery_ids_in(body.get_content() if body else ""))
    unreported = [row for row in by_status["FAILED"] if reported[row["id"]] == 0]
    reported_twice = [key for key, n in reported.items() if n > 1]
    gaps = stack.attempt_gaps()
    extra = sum(duplicates(receivers.requests).values())
    lost = len(missing_deliveries) + len(unfinished) + len(never_received) + len(unreported)
    lost += len(gaps)
    minutes = (time.monotonic() - started) / 60
    print("\n==== SOAK SUMMARY ====")
    print(f"duration        {minutes:.1f} min (drained: {drained})")
    print(f"published       {len(published)}")
    print(f"delivered       {len(by_status['SUCCEEDED'])}")
    print(f"failed          {len(by_status['FAILED'])} (emails: {len(smtp.messages)})")
    print(f"requests        {len(receivers.requests)}")
    print(f"duplicates      {extra} (worker SIGKILLs: {kills})")
    print(
        f"lost            {lost} (no delivery {len(missing_deliveries)}, unfinished"
        f" {len(unfinished)}, SUCCEEDED but never answered 2xx {len(never_received)},"
        f" FAILED but unreported {len(unreported)}, attempt gaps {len(gaps)})"
    )
    print(f"emails twice    {len(reported_twice)}")
    for name, values in rss.items():
        if values:
            trail = " ".join(f"{value:.0f}" for value in values)
            print(
                f"RSS {name:<7} MB  first {values[0]:.0f}, max {max(values):.0f}, last"
                f" {values[-1]:.0f}: {trail}"
            )
    print("======================", flush=True)
    return 0 if lost == 0 and not reported_twice else 1


if __name__ == "__main__":
    sys.exit(main())
