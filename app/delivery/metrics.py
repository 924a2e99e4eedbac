"""Prometheus metrics: what happened (counters, in the process that did it) and how the
queue looks (gauges, read from the database at scrape time, cached).

The API serves both on /metrics; a standalone worker serves its own counters on
``webhooks worker --metrics-port`` (the database's gauges come from the API only, so
that N processes do not report, and read, the same numbers N times).
The dashboard (ops/grafana/webhooks.json) and the alerts (ops/prometheus/alerts.yml)
use these names; tests/integration/test_observability_files.py keeps them in step.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable

import psycopg
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.store.database import Database
from app.store.queue import QueueSnapshot, queue_snapshot

logger = logging.getLogger(__name__)

# However often /metrics is scraped (several Prometheus servers, or anyone who can reach
# it), a process reads the database's gauges at most once per this long, and concurrent
# scrapes share one read. Below Prometheus's usual 15 s interval, so a scrape is never
# more than a few seconds stale.
SNAPSHOT_MAX_AGE_SECONDS = 5.0
# A database that does not answer within this long leaves the gauges out of the scrape
# (the process's counters are still served) instead of holding the scrape.
SNAPSHOT_TIMEOUT_SECONDS = 2.0

REGISTRY = CollectorRegistry(auto_describe=True)

DELIVERIES = Counter(
    "webhooks_deliveries_total",
    "Deliveries that reached a final state, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
ATTEMPTS = Counter(
    "webhooks_attempts_total",
    "Delivery attempts, by response status class (none: no response).",
    ["status_class"],
    registry=REGISTRY,
)
ATTEMPT_DURATION = Histogram(
    "webhooks_attempt_duration_seconds",
    "Duration of delivery attempts.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
    registry=REGISTRY,
)
PACED_ATTEMPTS = Counter(
    "webhooks_attempts_paced_total",
    "Attempts put off to a slot of their subscription's delivery rate (not attempts: nothing "
    "recorded), by how they waited for it (in_place: a moment in their worker slot; requeue: "
    "queued for the slot).",
    ["wait"],
    registry=REGISTRY,
)
MISSED_SLOTS = Counter(
    "webhooks_pacing_slots_missed_total",
    "Slots of a subscription's delivery rate given up by an attempt that came too late to use "
    "them (its job taken late, or its wait in place overrun); it reserved a new slot.",
    registry=REGISTRY,
)
RECORD_FAILURES = Counter(
    "webhooks_attempt_record_failures_total",
    "Sent attempts whose outcome could not be recorded, by what was recorded instead "
    "(without_response, nothing) or given up (gave_up); each one is logged at ERROR.",
    ["fallback"],
    registry=REGISTRY,
)
EMAILS = Counter(
    "webhooks_failure_emails_total",
    "Failure emails, by result (sent, failed; postponed: no free email slot; held: address limit).",
    ["result"],
    registry=REGISTRY,
)


# Every known label value starts at 0, so each series exists before its first event:
# rate() and increase() then count that first event, and the dashboard and the alerts
# find the series on a quiet service (Prometheus's advice for labelled counters).
for _counter, _values in (
    (DELIVERIES, ("succeeded", "failed")),
    (ATTEMPTS, ("none", "1xx", "2xx", "3xx", "4xx", "5xx")),
    (PACED_ATTEMPTS, ("in_place", "requeue")),
    (RECORD_FAILURES, ("without_response", "nothing", "gave_up")),
    (EMAILS, ("sent", "failed", "postponed", "held")),
):
    for _value in _values:
        _counter.labels(_value)


def status_class(status: int | None) -> str:
    return "none" if status is None else f"{status // 100}xx"


def record_attempt(status: int | None, duration_ms: int, final: str | None) -> None:
    """Count one attempt; ``final`` is the delivery's outcome when this attempt ended it."""
    ATTEMPTS.labels(status_class(status)).inc()
    ATTEMPT_DURATION.observe(duration_ms / 1000)
    if final is not None:
        DELIVERIES.labels(final).inc()


class QueueGauges:
    """The gauges read from the database (one statement, app/store/queue.py), cached for
    :data:`SNAPSHOT_MAX_AGE_SECONDS`; a failed read is cached too, so a database in
    trouble is not asked again by every scrape."""

    def __init__(
        self,
        alive_seconds: float,
        *,
        max_age_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._alive_seconds = alive_seconds
        self._max_age = SNAPSHOT_MAX_AGE_SECONDS if max_age_seconds is None else max_age_seconds
        self._clock = clock
        self._lock = asyncio.Lock()
        self._snapshot: QueueSnapshot | None = None
        self._read_at = -math.inf

    async def read(self, db: Database) -> QueueSnapshot | None:
        """The latest snapshot (None: the database did not answer)."""
        async with self._lock:
            if self._clock() - self._read_at >= self._max_age:
                self._snapshot = await self._fetch(db)
                self._read_at = self._clock()
            return self._snapshot

    async def _fetch(self, db: Database) -> QueueSnapshot | None:
        try:
            async with asyncio.timeout(SNAPSHOT_TIMEOUT_SECONDS):
                return await queue_snapshot(db, self._alive_seconds)
        except Exception as error:  # any failure leaves the gauges out of this scrape
            # An unreachable database is one line per read; anything else is a bug.
            expected = isinstance(error, TimeoutError | psycopg.Error | OSError)
            logger.warning(
                "metrics: queue gauges not read (%s)", type(error).__name__, exc_info=not expected
            )
            return None


def snapshot_families(snapshot: QueueSnapshot | None) -> list[Metric]:
    """The database's gauges as metric families; only ``webhooks_queue_metrics_up`` when
    the read failed (missing, not zero: a zero would tell the alerts all is well)."""
    up = GaugeMetricFamily(
        "webhooks_queue_metrics_up",
        "1 when this scrape has the gauges read from the database, 0 when it did not answer.",
        value=0 if snapshot is None else 1,
    )
    if snapshot is None:
        return [up]
    depth = GaugeMetricFamily(
        "webhooks_queue_depth",
        "Jobs in the queue, by queue and state (due, scheduled, running).",
        labels=["queue", "state"],
    )
    for d in snapshot.depths:
        depth.add_metric([d.queue, "due"], d.due)
        depth.add_metric([d.queue, "scheduled"], d.scheduled)
        depth.add_metric([d.queue, "running"], d.running)

    def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, documentation, value=value)

    families: list[Metric] = [
        up,
        depth,
        gauge(
            "webhooks_oldest_due_job_age_seconds",
            "Seconds since the oldest due job became due; grows when workers fall behind.",
            snapshot.oldest_due_seconds,
        ),
        gauge(
            "webhooks_workers_up",
            "Worker processes that heartbeated within WEBHOOKS_STALLED_AFTER_SECONDS.",
            snapshot.workers_up,
        ),
        gauge(
            "webhooks_retries_pending",
            "Deliveries waiting for their next attempt after a failed one (RETRYING).",
            snapshot.retries_pending,
        ),
        gauge(
            "webhooks_failure_emails_pending",
            "Failure emails opened and not sent yet (being sent, or the mail server failing).",
            snapshot.emails_unsent,
        ),
        gauge(
            "webhooks_failure_email_oldest_pending_age_seconds",
            "Seconds since the oldest unsent failure email was opened (0: none waits).",
            snapshot.oldest_unsent_email_seconds,
        ),
        gauge(
            "webhooks_failed_deliveries_unreported",
            "Failed deliveries no email has taken yet (inside the grouping window, or held "
            "by the per-address limit).",
            snapshot.failures_unreported,
        ),
    ]
    if snapshot.heartbeat_age_seconds is not None:
        families.append(
            gauge(
                "webhooks_worker_heartbeat_age_seconds",
                "Seconds since the freshest heartbeat of a registered worker (absent: none "
                "is registered).",
                snapshot.heartbeat_age_seconds,
            )
        )
    return families


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


async def render(db: Database, gauges: QueueGauges) -> tuple[bytes, str]:
    """The exposition text: this process's counters and the database's gauges."""
    state = CollectorRegistry(auto_describe=False)
    state.register(_Families(snapshot_families(await gauges.read(db))))
    return generate_latest(REGISTRY) + generate_latest(state), CONTENT_TYPE_LATEST
