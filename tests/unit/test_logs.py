"""Logs are JSON in production (one object per line, ids as keys) and readable in development."""

from __future__ import annotations

import json
import logging

from app.core.logs import JsonFormatter, ReadableFormatter


def record(**extra: object) -> logging.LogRecord:
    entry = logging.LogRecord(
        "app.delivery.attempts", logging.INFO, __file__, 1, "attempt %s: %s", (2, "failed"), None
    )
    for key, value in extra.items():
        setattr(entry, key, value)
    return entry


def test_production_logs_are_one_json_object_carrying_the_ids() -> None:
    line = JsonFormatter().format(record(delivery_id="d-1", company_id="acme", attempt=2))
    entry = json.loads(line)
    assert entry["message"] == "attempt 2: failed"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "app.delivery.attempts"
    assert (entry["delivery_id"], entry["company_id"], entry["attempt"]) == ("d-1", "acme", 2)


def test_development_logs_are_readable_lines_with_the_ids_at_the_end() -> None:
    line = ReadableFormatter().format(record(delivery_id="d-1", company_id="acme"))
    assert "attempt 2: failed" in line
    assert line.endswith("[company_id=acme delivery_id=d-1]")
    assert not line.lstrip().startswith("{")
