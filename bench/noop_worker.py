"""``python -m bench.noop_worker``: one queue-ceiling worker process (see bench/noop.py).

A module of its own so that the Procrastinate app is not created in ``__main__``.
"""

from __future__ import annotations

import logging
import sys

from app.core import event_loop
from app.core.settings import Settings
from bench.noop import run, run_stock


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    settings = Settings.from_env()
    if sys.argv[1:2] == ["--stock"]:
        event_loop.run(run_stock(sys.argv[2], settings.worker_concurrency))
    else:
        event_loop.run(run(settings))


if __name__ == "__main__":
    main()
