"""Logging: structured JSON in production, readable lines in development.

Log calls pass ids (event, delivery, company) as ``extra=`` fields; they show up as JSON
keys in production. Secrets are never passed to the logger in the first place.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from app.core.settings import Settings

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
CONTEXT_FIELDS = (
    "company_id",
    "event_id",
    "delivery_id",
    "subscription_id",
    "attempt",
    "correlation_id",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class ReadableFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = [
            f"{key}={record.__dict__[key]}" for key in CONTEXT_FIELDS if key in record.__dict__
        ]
        return f"{text} [{' '.join(context)}]" if context else text


def configure_logging(settings: Settings, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.is_production else ReadableFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Procrastinate logs every job at INFO; keep the interesting part.
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    # No httpx client runs here (deliveries use its transport alone, which logs nothing),
    # but one would log each URL at INFO, and a delivery URL carries API key values.
    logging.getLogger("httpx").setLevel(logging.WARNING)
