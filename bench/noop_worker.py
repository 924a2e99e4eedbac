"""``python -m bench.noop_worker``: one queue-ceiling worker process (see bench/noop.py).

A module of its own so that the Procrastinate app is not created in ``__main__``.
"""

from __future__ import annotations

import logging

from app.core import event_loop
from app.core.settings import Settings
from bench.noop import run


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    event_loop.run(run(Settings.from_env()))


if __name__ == "__main__":
    main()
