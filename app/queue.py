"""The job queue: one Procrastinate app, on PostgreSQL, shared by the API and the worker.

Domain code defers jobs by task *name* (``queue.configure_task(NAME, ...)``) so that
``app`` never imports ``jobs``; the tasks themselves live in ``jobs/`` and register on
this app when the worker imports them.
"""

from __future__ import annotations

import procrastinate

DELIVER_TASK = "deliver_webhook"
NOTIFY_TASK = "send_failure_notice"
RETENTION_TASK = "purge_old_data"

DELIVERY_QUEUE = "deliveries"
NOTICE_QUEUE = "notices"
MAINTENANCE_QUEUE = "maintenance"

TASK_MODULES = ["jobs.delivery", "jobs.notification", "jobs.maintenance"]

queue = procrastinate.App(
    connector=procrastinate.PsycopgConnector(),
    import_paths=TASK_MODULES,
)
