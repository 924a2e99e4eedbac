"""CPU time of the processes of a run (Linux ``/proc``): where the two cores go."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU seconds of a live process (plus its reaped children's)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return 0.0
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of proc(5)): utime, stime, cutime, cstime are 14-17.
    used = int(fields[11]) + int(fields[12])
    if children:
        used += int(fields[13]) + int(fields[14])
    return used / TICKS


def server_seconds(postmaster_pid: int) -> float:
    """A PostgreSQL server's CPU: the postmaster, its reaped backends and the live ones."""
    total = process_seconds(postmaster_pid, children=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text(encoding="ascii")
        except OSError:
            continue
        if int(text.rsplit(")", 1)[1].split()[1]) == postmaster_pid:
            total += process_seconds(int(entry.name))
    return total


class CpuMeter:
    """CPU seconds spent by named processes between ``start()`` and ``stop()``."""

    def __init__(self, pids: Mapping[str, list[int]], postmaster_pid: int | None) -> None:
        self.pids = pids
        self.postmaster_pid = postmaster_pid
        self._start: dict[str, float] = {}
        self._wall = 0.0

    def _now(self) -> dict[str, float]:
        now = {"driver (API)": time.process_time()}
        for name, pids in self.pids.items():
            now[name] = sum(process_seconds(pid) for pid in pids)
        if self.postmaster_pid is not None:
            now["postgresql"] = server_seconds(self.postmaster_pid)
        return now

    def start(self) -> None:
        self._start = self._now()
        self._wall = time.monotonic()

    def stop(self) -> dict[str, float]:
        """CPU seconds per process group, and the wall-clock seconds, since ``start()``."""
        now = self._now()
        used = {name: round(now[name] - self._start.get(name, 0.0), 2) for name in now}
        used["wall"] = round(time.monotonic() - self._wall, 2)
        return used
