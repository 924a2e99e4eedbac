"""Every process runs its coroutines on the project's event loop (app/core/event_loop.py)."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from app.core import event_loop

ROOT = Path(__file__).resolve().parents[2]
# Ways to start an event loop of one's own, bypassing event_loop.run.
OWN_LOOPS = {("asyncio", "run"), ("asyncio", "Runner"), ("asyncio", "new_event_loop")}


def own_loops(source: str) -> list[int]:
    """The lines of ``source`` that start an event loop without event_loop.run."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and (node.value.id, node.attr) in OWN_LOOPS
    ]


def test_no_process_starts_a_loop_of_its_own() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in ("app", "jobs", "bench")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "app" / "core" / "event_loop.py"
        for line in own_loops(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_a_loop_of_its_own_is_found() -> None:
    assert own_loops("import asyncio\nasyncio.run(main())\n") == [2]
    assert own_loops("with asyncio.Runner() as runner:\n    pass\n") == [1]
    assert own_loops("from app.core import event_loop\nevent_loop.run(main())\n") == []


def test_the_project_loop_is_uvloop_where_it_is_installed() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def loop_type() -> type[asyncio.AbstractEventLoop]:
        return type(asyncio.get_running_loop())

    assert event_loop.run(loop_type()) is uvloop.Loop
