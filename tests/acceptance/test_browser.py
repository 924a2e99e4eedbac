"""GraphiQL works in `webhooks dev`, in a real headless Chromium, with no internet access.

Needs Debian's `chromium` (`.ci/run` installs it). Without it the test is skipped on a
developer's machine, and fails in CI (CI=true), where a skip would hide a regression.
The screenshots land in test-artifacts/.
"""

from __future__ import annotations

import asyncio
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
from typing import Any

import httpx
import pytest

from tests.acceptance.processes import environment, run_cli
from tests.payloads import order_status_payload

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
        [sys.executable, "-m", "app.run.cli", "dev", "--port", str(port)],
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


SUBSCRIBE = "subscription { deliveryUpdates { status event { subject } } }"
CREATE_SUBSCRIPTION = """
mutation { createWebhookSubscription(input: {webhook: "ORDER_STATUS",
  callbackUrl: "http://127.0.0.1:9/hook", notificationEmail: "ops@example.com"}) {
  subscription { id } userErrors { message } } }
"""
PUBLISH = """
mutation($companyId: ID!, $subject: String!, $payload: JSON!) {
  publishEvent(input: {companyId: $companyId, webhook: "ORDER_STATUS", subject: $subject,
    payload: $payload}) { event { id } userErrors { message } }
}
"""
PAYLOAD = order_status_payload(n=1)
# The header editor is a CodeMirror instance; setting its text is what pasting does.
SET_HEADERS = """(text) => {
  const editor = [...document.querySelectorAll('.graphiql-editor-tool .CodeMirror')]
    .map((element) => element.CodeMirror)
    .find((instance) => instance.getValue().includes('uthorization'));
  editor.setValue(text);
}"""


def graphql(base: str, key: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    response = httpx.post(
        base + "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def second_company_key(tmp_path: Path, database_url: str) -> str:
    """A COMPANY key of a second company, made with the CLI in the dev server's database."""
    env = environment(WEBHOOKS_DATABASE_URL=database_url, WEBHOOKS_DATA_DIR=str(tmp_path / "data"))
    run_cli("company", "create", "Other Realty", "--id", "other", "--json", env=env).json()
    created = run_cli("key", "create", "--company", "other", "--json", env=env).json()
    return str(created["key"])


@pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="Debian's chromium is not installed (CI installs it)",
)
async def test_graphiql_subscriptions_use_the_key_in_the_header_editor(
    dev_server: tuple[str, str], tmp_path: Path, database_url: str
) -> None:
    from playwright.async_api import async_playwright

    assert CHROMIUM is not None, "CI must have chromium: apt-get install chromium"
    base, demo_key = dev_server
    publisher = json.loads((tmp_path / "data" / "demo-keys.json").read_text())["publisher_key"]
    other_key = second_company_key(tmp_path, database_url)
    for key in (demo_key, other_key):
        assert not graphql(base, key, CREATE_SUBSCRIPTION)["createWebhookSubscription"][
            "userErrors"
        ]
    headers = json.dumps({"Authorization": f"Bearer {demo_key}"})
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page()
            # What each websocket the page opens receives, recorded from its first frame.
            received: list[list[str]] = []

            def record(socket: Any) -> None:
                frames: list[str] = []
                received.append(frames)
                socket.on("framereceived", lambda payload: frames.append(str(payload)))

            page.on("websocket", record)
            await page.add_init_script(
                f"localStorage.setItem('graphiql:headers', {json.dumps(headers)});"
                f"localStorage.setItem('graphiql:query', {json.dumps(SUBSCRIBE)});"
            )
            await page.goto(base + "/graphql", wait_until="networkidle")
            result = page.locator(".graphiql-response")
            execute = page.locator(".graphiql-execute-button")

            async def acknowledged(first: int) -> None:
                """Wait until a socket opened as number ``first`` or later is acknowledged."""
                for _ in range(200):
                    if any(
                        "connection_ack" in frame for frames in received[first:] for frame in frames
                    ):
                        return
                    await asyncio.sleep(0.05)
                raise AssertionError(f"no websocket from {first} on was acknowledged: {received}")

            # Given a subscription running with the demo company's key
            await execute.click()
            await acknowledged(0)
            await execute.click()  # stop it

            # When a bad key is pasted and the subscription run at once
            await page.evaluate(SET_HEADERS, json.dumps({"Authorization": "Bearer pwk_wrong"}))
            await execute.click()

            # Then the refusal shows
            await result.get_by_text("Missing or invalid API key").wait_for(timeout=10_000)
            assert "4403" in await result.inner_text()

            # When the other company's key is pasted and the subscription run at once
            await page.evaluate(SET_HEADERS, json.dumps({"Authorization": f"Bearer {other_key}"}))
            # (counted before the click: the page opens that key's socket when it runs)
            opened_before = len(received)
            await execute.click()
            await acknowledged(opened_before)

            # Then the updates it shows are the other company's, and only theirs
            for attempt in range(20):
                for company in ("demo", "other"):
                    subject = f"for-{company}-{attempt}"
                    graphql(
                        base,
                        publisher,
                        PUBLISH,
                        {"companyId": company, "subject": subject, "payload": PAYLOAD},
                    )
                await asyncio.sleep(0.5)
                if "for-other" in await result.inner_text():
                    break
            await asyncio.sleep(1.0)  # time for any stray update to show
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "graphiql-subscription.png"))
            shown = await result.inner_text()
            assert "for-other" in shown
            assert "for-demo" not in shown
        finally:
            await browser.close()
