"""Prometheus metrics: what happened (counters, in the process that did it) and how the
queue looks (gauges, read from the database at scrape time).

The API serves them on /metrics; a standalone worker serves its own on
``webhooks worker --metrics-port``.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from app.store.database import Database
from app.store.queue import oldest_due_job_age, queue_depths

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
QUEUE_DEPTH = Gauge(
    "webhooks_queue_depth",
    "Jobs in the queue, by queue and state (due, scheduled, running).",
    ["queue", "state"],
    registry=REGISTRY,
)
OLDEST_DUE_AGE = Gauge(
    "webhooks_oldest_due_job_age_seconds",
    "Seconds since the oldest due job became due; grows when workers fall behind.",
    registry=REGISTRY,
)


def status_class(status: int | None) -> str:
    return "none" if status is None else f"{status // 100}xx"


def record_attempt(status: int | None, duration_ms: int, final: str | None) -> None:
    """Count one attempt; ``final`` is the delivery's outcome when this attempt ended it."""
    ATTEMPTS.labels(status_class(status)).inc()
    ATTEMPT_DURATION.observe(duration_ms / 1000)
    if final is not None:
        DELIVERIES.labels(final).inc()


async def render(db: Database) -> tuple[bytes, str]:
    """The exposition text, after refreshing the queue gauges from the database."""
    for depth in await queue_depths(db):
        QUEUE_DEPTH.labels(depth.queue, "due").set(depth.due)
        QUEUE_DEPTH.labels(depth.queue, "scheduled").set(depth.scheduled)
        QUEUE_DEPTH.labels(depth.queue, "running").set(depth.running)
    OLDEST_DUE_AGE.set(await oldest_due_job_age(db))
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
