"""Real headless Chromium against a real `webhooks dev`, for the browser tests.

A pytest plugin (tests/conftest.py lists it): the ``dev_server`` fixture, and what the
GraphiQL and portal tests share: where Debian's chromium is, its flags, the skip rule,
the screenshots' folder, a GraphQL call with a key, a second company, and a recorder of
requests that leave the service.

Without `chromium` the tests are skipped on a developer's machine, and fail in CI
(CI=true), where a skip would hide a regression.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.processes import free_port
from tests.acceptance.processes import environment, run_cli

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="Debian's chromium is not installed (CI installs it)",
)


@dataclass(frozen=True)
class DevServer:
    """A running `webhooks dev`: its address, data folder and database."""

    base: str
    data_dir: Path
    database_url: str

    @property
    def keys(self) -> dict[str, str]:
        loaded: dict[str, str] = json.loads((self.data_dir / "demo-keys.json").read_text())
        return loaded

    @property
    def company_key(self) -> str:
        return self.keys["company_key"]

    @property
    def publisher_key(self) -> str:
        return self.keys["publisher_key"]


def start_dev(database_url: str, tmp_path: Path, **variables: str) -> Iterator[DevServer]:
    """`webhooks dev` on a free port, until the generator is closed."""
    port = free_port()
    log_path = tmp_path / "dev.log"
    log = log_path.open("w")
    env = {
        **os.environ,
        "WEBHOOKS_DATABASE_URL": database_url,
        "WEBHOOKS_DATA_DIR": str(tmp_path / "data"),
        **variables,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.run.cli", "dev", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield DevServer(base, tmp_path / "data", database_url)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(20)
        log.close()


@pytest.fixture
def dev_server(database_url: str, tmp_path: Path) -> Iterator[DevServer]:
    """`webhooks dev` on a free port, with its demo company and keys."""
    yield from start_dev(database_url, tmp_path)


def graphql(base: str, key: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    """One GraphQL call with a key; its data (a GraphQL error fails the test)."""
    response = httpx.post(
        base + "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def second_company_key(server: DevServer, company_id: str = "other") -> str:
    """A COMPANY key of a second company, made with the CLI in the dev server's database."""
    env = environment(
        WEBHOOKS_DATABASE_URL=server.database_url, WEBHOOKS_DATA_DIR=str(server.data_dir)
    )
    run_cli("company", "create", "Other Realty", "--id", company_id, "--json", env=env).json()
    created = run_cli("key", "create", "--company", company_id, "--json", env=env).json()
    return str(created["key"])


class OutsideRequests:
    """Records every request a page makes that leaves the service (``data:`` aside)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.urls: list[str] = []

    def attach(self, page: Any) -> None:
        page.on("request", self._seen)

    def _seen(self, request: Any) -> None:
        if not request.url.startswith((self.base, "data:", "ws://" + self.base[7:])):
            self.urls.append(request.url)
