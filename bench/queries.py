"""The benchmark's own named SQL (``bench/queries.sql``), loaded like the service's."""

from __future__ import annotations

from pathlib import Path

from app.store.queries import parse_queries

BENCH_QUERIES: dict[str, str] = parse_queries(
    (Path(__file__).with_name("queries.sql")).read_text(encoding="utf-8")
)
