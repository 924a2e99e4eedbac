"""How big each phase is: the full run and the smoke run."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Sizes:
    """Sizes and rates of one benchmark run."""

    concurrency: int = 50  # the worker's default (WEBHOOKS_WORKER_CONCURRENCY)
    http_requests: int = 6000  # A: requests per client process
    queue_jobs: int = 6000  # B: no-op jobs per measurement
    events: int = 2000  # C: events published per run
    publishers: int = 8  # C: publishEvent calls in flight
    latency_seconds: float = 30.0  # D: how long the steady stream lasts
    latency_rate: float = 50.0  # D: events per second
    retry_events: int = 300  # E: deliveries whose first attempt fails
    retry_rate: float = 30.0  # E: events per second
    retry_interval: float = 1.0  # E: WEBHOOKS_RETRY_INTERVAL_SECONDS
    idle_seconds: float = 30.0  # E: how long the idle workers' queries are counted
    executor_rounds: int = 2  # J: rounds of servers with the executor on, then off
    scale_rows: int = 1_000_000  # F: deliveries generated
    scale_companies: int = 100  # F
    api_requests: int = 200  # F: requests per query shape
    fanout_publishes: int = 200  # G
    fanout_subscriptions: int = 100  # G
    memory_deliveries: int = 1000  # H: in flight at once
    memory_delay_ms: int = 10_000  # H: how long the slow receiver takes to answer
    backlog_retries: int = 20_000  # I: retries waiting for later
    backlog_events: int = 1000  # I: events of the burst
    backlog_seconds: float = 10.0  # I: how long the steady stream lasts
    backlog_rate: float = 50.0  # I: events per second of the steady stream
    ordered_subjects: int = 100  # K: subjects (orders)
    ordered_events: int = 10  # K: events per subject
    ordered_fanout: int = 10  # K: subscriptions of each company
    portal_loads: int = 8  # L: cold loads of the portal's delivery log
    smoke: bool = False

    def with_rows(self, rows: int | None) -> Sizes:
        return self if rows is None else replace(self, scale_rows=rows)

    def with_events(self, events: int) -> Sizes:
        return replace(self, events=events)


FULL = Sizes()

SMOKE = Sizes(
    http_requests=300,
    queue_jobs=300,
    events=30,
    latency_seconds=2.0,
    retry_events=10,
    retry_rate=20.0,
    retry_interval=0.5,
    idle_seconds=1.0,
    executor_rounds=1,
    scale_rows=2000,
    scale_companies=10,
    api_requests=20,
    portal_loads=2,
    fanout_publishes=10,
    fanout_subscriptions=100,
    memory_deliveries=100,
    memory_delay_ms=500,
    backlog_retries=500,
    backlog_events=20,
    backlog_seconds=1.0,
    backlog_rate=20.0,
    ordered_subjects=10,
    ordered_events=3,
    smoke=True,
)
