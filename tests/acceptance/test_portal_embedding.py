"""Embedding the portal, in a real headless Chromium: a page on an origin the company lists
in its embed origins frames the portal; a page on any other origin is refused by the
browser (CSP frame-ancestors), and shows nothing of the company.

Needs Debian's `chromium`, skipped without it except in CI (as tests/acceptance/test_browser.py).
The screenshots land in test-artifacts/.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.core.secret_box import generate_key
from tests.acceptance.processes import Processes, run_cli, seed_tenants, service_environment
from tests.acceptance.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="Debian's chromium is not installed (CI installs it)",
)


@contextmanager
def customer_site(portal_url: str) -> Iterator[str]:
    """A customer's page that frames ``portal_url``, on a port of its own; yields its origin."""
    page = (
        "<!doctype html><html><head><title>Customer app</title></head><body>"
        f'<h1>Our webhooks</h1><iframe id="portal" src="{portal_url}" '
        'width="900" height="500"></iframe></body></html>'
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path / "logs") as started:
        yield started


async def framed(browser: Any, site: str, portal_base: str, shot: str) -> dict[str, Any]:
    """Open the customer's page; what its iframe holds, and what the console said."""
    page = await browser.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    try:
        await page.goto(site, wait_until="load")
        portal = None
        for _ in range(100):  # the frame follows /portal/open's redirect to /portal/
            portal = next(
                (frame for frame in page.frames if frame.url.startswith(portal_base + "/portal/")),
                None,
            )
            if portal is not None and portal.url.endswith("/portal/"):
                break
            if any("frame-ancestors" in line for line in console):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / shot))
        frame = page.frames[1] if len(page.frames) > 1 else None
        title = ""
        if frame is not None:
            try:
                title = await frame.evaluate("document.title")
            except Exception:  # a frame the browser refused is an error page: nothing to read
                title = ""
        return {"title": title, "console": console, "frame_url": frame.url if frame else ""}
    finally:
        await page.close()


async def test_a_listed_origin_frames_the_portal_and_another_is_blocked(
    database_url: str, tmp_path: Path, processes: Processes
) -> None:
    from playwright.async_api import async_playwright

    assert CHROMIUM is not None, "CI must have chromium: apt-get install chromium"
    await asyncio.to_thread(seed_tenants, database_url)  # it runs a loop of its own
    env = service_environment(database_url, tmp_path / "data", generate_key())
    server = processes.serve(env)
    portal_base = server.url("")
    cli_env = {**env, "WEBHOOKS_PUBLIC_URL": portal_base}

    def link() -> str:
        minted = run_cli("portal-link", "--company", "company-a", "--json", env=cli_env)
        return str(minted.json()["url"])

    with customer_site(link()) as listed, customer_site(link()) as unlisted:
        run_cli("company", "portal-origins", "company-a", listed, env=cli_env)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_FLAGS
            )
            try:
                allowed = await framed(browser, listed, portal_base, "portal-embedded.png")
                blocked = await framed(browser, unlisted, portal_base, "portal-blocked.png")
            finally:
                await browser.close()

    # The listed origin's frame holds the company's portal page
    assert allowed["frame_url"] == portal_base + "/portal/", allowed
    assert "Company A" in allowed["title"], allowed
    assert not any("frame-ancestors" in line for line in allowed["console"]), allowed
    # The other origin's frame was refused by the browser, naming the directive
    assert any("frame-ancestors" in line and listed in line for line in blocked["console"]), blocked
    assert "Company A" not in blocked["title"], blocked
