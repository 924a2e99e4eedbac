"""GraphiQL works in `webhooks dev`, in a real headless Chromium, with no internet access.

Needs Debian's `chromium` (`.ci/run` installs it). Without it the test is skipped on a
developer's machine, and fails in CI (CI=true), where a skip would hide a regression.
The screenshot lands in test-artifacts/graphiql.png.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def dev_server(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`webhooks dev` on a free port; yields (base URL, demo COMPANY key)."""
    port = free_port()
    log = (tmp_path / "dev.log").open("w")
    env = {
        **os.environ,
        "WEBHOOKS_DATABASE_URL": database_url,
        "WEBHOOKS_DATA_DIR": str(tmp_path / "data"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "dev", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "dev.log").read_text()
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "dev.log").read_text()
            time.sleep(0.1)
        keys = json.loads((tmp_path / "data" / "demo-keys.json").read_text())
        yield base, keys["company_key"]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(20)
        log.close()


@pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="Debian's chromium is not installed (CI installs it)",
)
async def test_graphiql_runs_a_query_with_the_demo_key(dev_server: tuple[str, str]) -> None:
    from playwright.async_api import async_playwright

    assert CHROMIUM is not None, "CI must have chromium: apt-get install chromium"
    base, company_key = dev_server
    headers = json.dumps({"Authorization": f"Bearer {company_key}"})
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page()
            outside: list[str] = []
            page.on(
                "request",
                lambda request: (
                    outside.append(request.url)
                    if not request.url.startswith((base, "data:"))
                    else None
                ),
            )
            # GraphiQL keeps its editors in localStorage: preset the key and the query.
            await page.add_init_script(
                f"localStorage.setItem('graphiql:headers', {json.dumps(headers)});"
                "localStorage.setItem('graphiql:query', '{ webhookTypes { key name } }');"
            )
            await page.goto(base + "/graphql", wait_until="networkidle")
            await page.click(".graphiql-execute-button")
            result = page.locator(".graphiql-response")
            await result.get_by_text("ORDER_STATUS").wait_for(timeout=10_000)
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "graphiql.png"))
            assert "Order Status" in await result.inner_text()
            assert outside == [], f"GraphiQL must not load anything from elsewhere: {outside}"
        finally:
            await browser.close()
