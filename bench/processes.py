"""Child processes of a benchmark run: receiver, workers, API server, no-op workers.

Every child logs to a file of the run's work directory (never an unread pipe), runs in
its own session, and is stopped by its own pid when the phase that started it ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

PYTHON = sys.executable
# The console script installed next to this interpreter (the project's venv).
WEBHOOKS = str(Path(sys.executable).with_name("webhooks"))
LOG_TAIL_LINES = 40


class ChildError(RuntimeError):
    """A child process failed to start or died; the message carries its log's tail."""


class Child:
    """One background process; stdout and stderr go to ``log_path``."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path):
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
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

    def running(self) -> bool:
        return self.popen.poll() is None

    def check(self) -> None:
        """Raise if the process has died."""
        if not self.running():
            raise ChildError(f"{self.name} exited with {self.popen.returncode}\n{self.tail()}")

    def tail(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return f"--- last lines of {self.log_path} ---\n" + "\n".join(lines[-LOG_TAIL_LINES:])

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

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, then SIGKILL if it lingers; returns the exit status."""
        if self.running():
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait(timeout=10)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def child_environment(**variables: str) -> dict[str, str]:
    """This environment without any service setting, plus ``variables``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("WEBHOOKS_") and name != "DATABASE_URL"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(variables)
    return env


class Receiver(Child):
    """The receiver process (``bench.receiver``) and a client for its control paths."""

    def __init__(self, log_path: Path) -> None:
        port_file = log_path.with_suffix(".port")
        port_file.unlink(missing_ok=True)
        super().__init__(
            "receiver",
            [PYTHON, "-m", "bench.receiver", "--port-file", str(port_file)],
            child_environment(),
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

    def url(self, path: str) -> str:
        return self.base_url + path

    def stats(self) -> dict[str, Any]:
        response = httpx.get(self.url("/_stats"), timeout=30)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def reset(self) -> None:
        httpx.post(self.url("/_reset"), timeout=10).raise_for_status()


def wait_for_http(child: Child, url: str, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers 200 (an API server's /readyz)."""
    deadline = time.monotonic() + timeout
    while True:
        child.check()
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise ChildError(f"{child.name} did not answer {url} in {timeout} s\n{child.tail()}")
        time.sleep(0.1)


def read_json_line(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8").strip().splitlines()[-1])
