"""Event loop: the processes' coroutines run on uvloop where it exists.

uvloop (libuv) schedules callbacks and does socket I/O for a fraction of the CPU the
standard loop spends; a worker is mostly that (two database round trips and one HTTP
request per delivery), and uvicorn picks uvloop by itself for the API. Where uvloop is
not installed (it does not support Windows), the standard loop runs the same code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None for the standard one."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - installed wherever uvloop builds
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, on uvloop when it is available."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
