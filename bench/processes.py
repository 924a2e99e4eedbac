"""Child processes: one helper for the benchmark's and the acceptance tests' processes.

A :class:`Child` runs in its own session (a Ctrl-C in the terminal reaches only the
parent) and logs to a file (never a pipe: an unread pipe fills up and blocks the child,
an unclosed one is a ResourceWarning); failure messages carry the tail of that log. The
benchmark starts receivers, workers, API servers and no-op workers with it, the
acceptance tests the real ``webhooks`` command (``tests/acceptance/processes.py``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

PYTHON = sys.executable
# The console script installed next to this interpreter (the project's venv).
WEBHOOKS = str(Path(sys.executable).with_name("webhooks"))
LOG_TAIL_LINES = 60


class ChildError(RuntimeError):
    """A child process failed to start or died; the message carries its log's tail."""


class Child:
    """One background process; stdout and stderr go to ``log_path``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        base_url: str | None = None,
    ) -> None:
        """Start ``argv``; ``base_url`` is where it serves HTTP, if it does."""
        self.name = name
        self.argv = tuple(argv)
        self.log_path = log_path
        self.base_url = base_url
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            # The child keeps its own copy of the descriptor; ours closes here.
            self.popen = subprocess.Popen(  # noqa: S603 (our own argv, no shell)
                list(argv),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        """None while it runs."""
        return self.popen.poll()

    def running(self) -> bool:
        return self.returncode is None

    def check(self) -> None:
        """Raise if the process has died."""
        if not self.running():
            raise ChildError(f"{self.name} exited with {self.popen.returncode}\n{self.tail()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def tail(self) -> str:
        lines = self.log().splitlines()[-LOG_TAIL_LINES:]
        return f"--- last lines of {self.log_path} ---\n" + "\n".join(lines)

    def describe(self) -> str:
        """Who it is, whether it runs, and the tail of its log: for failure messages."""
        state = "running" if self.running() else f"exited {self.returncode}"
        command = " ".join([Path(self.argv[0]).name, *self.argv[1:]])
        return f"`{command}` ({self.name}, pid {self.pid}, {state})\n{self.tail()}"

    def url(self, path: str) -> str:
        if self.base_url is None:
            raise RuntimeError(f"{self.name} serves no HTTP")
        return self.base_url + path

    def wait_for_http(
        self, path: str = "/readyz", *, status: int = 200, timeout: float = 30.0
    ) -> httpx.Response:
        """Poll ``GET path`` until it answers ``status``; raise as soon as the process
        dies, or after ``timeout``."""
        url = self.url(path)
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            try:
                response = httpx.get(url, timeout=2)
            except httpx.HTTPError:
                pass
            else:
                if response.status_code == status:
                    return response
            if time.monotonic() > deadline:
                raise ChildError(
                    f"{self.name} did not answer {url} with {status} in {timeout} s\n"
                    + self.describe()
                )
            time.sleep(0.1)

    def memory_kib(self) -> dict[str, int]:
        """VmHWM (peak resident set) and VmRSS of the process, in KiB (Linux)."""
        found: dict[str, int] = {}
        try:
            text = Path(f"/proc/{self.pid}/status").read_text(encoding="ascii")
        except OSError:
            return found
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                found[name] = int(value.split()[0])
        return found

    def send(self, sig: signal.Signals) -> None:
        if self.running():
            self.popen.send_signal(sig)

    def stop(self, sig: signal.Signals = signal.SIGTERM, *, timeout: float = 30.0) -> int:
        """Send ``sig``, wait, then kill it if it lingers; returns the exit status."""
        self.send(sig)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return self.popen.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL the process (and anything left in its session) and reap it."""
        if self.running():
            with suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def environment(**variables: str) -> dict[str, str]:
    """This process's environment without any service setting, plus ``variables``.

    Nothing leaks in from the developer's shell (``DATABASE_URL``, ``WEBHOOKS_*``, and
    ``OTEL_*``: a collector configured there would trace every child).
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("WEBHOOKS_", "OTEL_")) and name != "DATABASE_URL"
    }
    env["PYTHONUNBUFFERED"] = "1"  # logs reach the file as they happen
    env.update(variables)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Receiver(Child):
    """The receiver process (``bench.receiver``) and a client for its control paths."""

    def __init__(self, log_path: Path, prefix: Sequence[str] = ()) -> None:
        """``prefix`` goes before the command (``ip netns exec NAME``: a receiver on a
        network namespace's own loopback, phase N)."""
        port_file = log_path.with_suffix(".port")
        port_file.unlink(missing_ok=True)
        super().__init__(
            "receiver",
            [*prefix, PYTHON, "-m", "bench.receiver", "--port-file", str(port_file)],
            environment(),
            log_path,
        )
        deadline = time.monotonic() + 20
        while not port_file.exists() or not port_file.read_text().strip():
            self.check()
            if time.monotonic() > deadline:
                raise ChildError(f"the receiver did not start\n{self.tail()}")
            time.sleep(0.02)
        self.port = int(port_file.read_text().strip())
        self.base_url = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        response = httpx.get(self.url("/_stats"), timeout=30)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def reset(self) -> None:
        httpx.post(self.url("/_reset"), timeout=10).raise_for_status()
