"""GraphiQL works in `webhooks dev`, in a real headless Chromium, with no internet access.

Needs Debian's `chromium` (`.ci/run` installs it). Without it the test is skipped on a
developer's machine, and fails in CI (CI=true), where a skip would hide a regression.
The screenshots land in test-artifacts/.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_FLAGS,
    DevServer,
    OutsideRequests,
    graphql,
    needs_chromium,
    second_company_key,
)
from tests.payloads import order_status_payload


@needs_chromium
async def test_graphiql_runs_a_query_with_the_demo_key(dev_server: DevServer) -> None:
    from playwright.async_api import async_playwright

    assert CHROMIUM is not None, "CI must have chromium: apt-get install chromium"
    base, company_key = dev_server.base, dev_server.company_key
    headers = json.dumps({"Authorization": f"Bearer {company_key}"})
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page()
            outside = OutsideRequests(base)
            outside.attach(page)
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
            assert outside.urls == [], f"GraphiQL must load nothing from elsewhere: {outside.urls}"
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


@needs_chromium
async def test_graphiql_subscriptions_use_the_key_in_the_header_editor(
    dev_server: DevServer,
) -> None:
    from playwright.async_api import async_playwright

    assert CHROMIUM is not None, "CI must have chromium: apt-get install chromium"
    base, demo_key, publisher = dev_server.base, dev_server.company_key, dev_server.publisher_key
    other_key = second_company_key(dev_server)
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
