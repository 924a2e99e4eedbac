"""The portal in a real headless Chromium, through a real `webhooks dev` and real links.

Every page is opened the way a customer opens it: a link minted with the demo company's
key (GraphQL ``createPortalLink``), exchanged for a session cookie; nothing is
intercepted. Receivers are real HTTP servers on 127.0.0.1, the worker is dev's own.
Each test leaves screenshots in test-artifacts/portal-*.png, runs axe-core on each
screen it shows (no serious or critical violation), and asserts that the page loaded
nothing from outside the service.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_FLAGS,
    DevServer,
    OutsideRequests,
    graphql,
    needs_chromium,
    second_company_key,
    start_dev,
)
from tests.payloads import order_status_payload
from tests.receivers import Receiver, respond

# Two attempts a second apart: a failing delivery is FAILED (and may be redelivered)
# within the test's time, not after ten attempts six minutes apart.
FAST = {
    "WEBHOOKS_RETRY_INTERVAL_SECONDS": "1",
    "WEBHOOKS_MAX_ATTEMPTS": "2",
    "WEBHOOKS_POLL_INTERVAL_SECONDS": "0.2",
    "WEBHOOKS_EMAIL_WINDOW_SECONDS": "0",
}
WAIT_MS = 15_000
MINT = """
mutation($access: PortalAccess!) {
  createPortalLink(input: {access: $access}) { link { url } userErrors { message } }
}
"""
PUBLISH = """
mutation($companyId: ID!, $subject: String!, $payload: JSON!) {
  publishEvent(input: {companyId: $companyId, webhook: "ORDER_STATUS", subject: $subject,
    payload: $payload}) { event { id } userErrors { message } }
}
"""
SUBSCRIBE = """
mutation($url: String!, $description: String) {
  createWebhookSubscription(input: {webhook: "ORDER_STATUS", callbackUrl: $url,
    notificationEmail: "ops@example.com", description: $description}) {
    subscription { id } userErrors { message } }
}
"""
HOSTILE_BODY = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">'
HOSTILE_HEADER = '<img src=x onerror="window.__pwned=1">'


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[DevServer]:
    yield from start_dev(database_url, tmp_path, **FAST)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def mint_link(server: DevServer, access: str = "FULL") -> str:
    """A fresh single-use link of the demo company, as its backend would mint one."""
    minted = graphql(server.base, server.company_key, MINT, {"access": access})
    payload = minted["createPortalLink"]
    assert payload["userErrors"] == [], payload
    url: str = payload["link"]["url"]
    assert url.startswith(server.base), url
    return url


def subscribe(server: DevServer, url: str, description: str, key: str | None = None) -> str:
    """A subscription made with a COMPANY key (the demo company's by default); its id."""
    variables = {"url": url, "description": description}
    made = graphql(server.base, key or server.company_key, SUBSCRIBE, variables)
    payload = made["createWebhookSubscription"]
    assert payload["userErrors"] == [], payload
    return str(payload["subscription"]["id"])


def publish(server: DevServer, subject: str, company: str = "demo") -> None:
    variables = {"companyId": company, "subject": subject, "payload": order_status_payload()}
    published = graphql(server.base, server.publisher_key, PUBLISH, variables)
    assert published["publishEvent"]["userErrors"] == []


@dataclass
class Portal:
    """A Chromium page on the portal, with what it logged and what it fetched elsewhere."""

    page: Any
    outside: OutsideRequests
    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    async def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / f"portal-{name}.png"), full_page=True)

    async def accessible(self, screen: str) -> None:
        """axe-core on what the page shows now: no serious or critical violation."""
        from axe_playwright_python.async_playwright import Axe

        results = await Axe().run(self.page)
        serious = [
            f"{violation['id']} ({violation['impact']}): {violation['help']} at "
            f"{[node['target'] for node in violation['nodes']][:3]}"
            for violation in results.response["violations"]
            if violation["impact"] in ("serious", "critical")
        ]
        assert serious == [], f"{screen}: {serious}"

    async def go(self, hash_route: str) -> None:
        """Another screen, as a click on a link does (same document, no reload)."""
        await self.page.evaluate("(route) => { location.hash = route; }", hash_route)
        await self.page.locator("main h2").first.wait_for()

    async def tab_to(self, name: str, *, limit: int = 80) -> None:
        """Presses Tab until the focus is on the control called ``name``."""
        for _ in range(limit):
            await self.page.keyboard.press("Tab")
            focused = await self.page.evaluate(FOCUSED_NAME)
            if focused == name:
                return
        raise AssertionError(f"Tab never reached {name!r}")


# A datetime-local input's value ten minutes ago, in the browser's own time zone.
TEN_MINUTES_AGO = """() => {
  const date = new Date(Date.now() - 600000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}"""
# The focused element's accessible name, roughly: its label, aria-label or text.
FOCUSED_NAME = """() => {
  const element = document.activeElement;
  if (!element) return null;
  if (element.labels && element.labels.length) return element.labels[0].textContent.trim();
  return (element.getAttribute('aria-label') || element.textContent || '').trim();
}"""


@asynccontextmanager
async def portal(server: DevServer, link: str, *, width: int = 1280) -> AsyncIterator[Portal]:
    """Chromium with the link opened: the session's page, as a person sees it."""
    from playwright.async_api import async_playwright

    assert CHROMIUM is not None, "CI must have chromium: apt-get install chromium"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(viewport={"width": width, "height": 900})
            opened = Portal(page, OutsideRequests(server.base))
            opened.outside.attach(page)
            page.on("console", lambda message: opened.console.append(message.text))
            page.on("pageerror", lambda error: opened.page_errors.append(str(error)))
            await page.goto(link)
            await page.locator("main h2").first.wait_for()
            yield opened
            assert opened.page_errors == [], opened.page_errors
            assert opened.outside.urls == [], f"loaded from elsewhere: {opened.outside.urls}"
        finally:
            await browser.close()


def row(page: Any, subject: str) -> Any:
    """The delivery log's row of the delivery whose subject is ``subject``."""
    return page.locator("tr[data-delivery]").filter(
        has=page.locator("td[data-label=Subject]", has_text=re.compile(f"^{re.escape(subject)}$"))
    )


@needs_chromium
async def test_the_journey_of_issue_15(server: DevServer, receiver: Receiver) -> None:
    other_key = second_company_key(server)
    other_id = subscribe(server, receiver.url_for("/other-company"), "OTHER-COMPANY-SUB", other_key)
    publish(server, "OTHER-COMPANY-ORDER", company="other")
    receiver.script("/hook", respond(200, "thanks"))

    # 1. A link minted with the company's key opens the portal
    async with portal(server, mint_link(server)) as opened:
        page = opened.page
        await page.evaluate("window.__sameDocument = true")
        assert "Demo Company" in await page.locator("header").inner_text()
        await page.get_by_text("Full access").wait_for()
        await page.get_by_text(re.compile("^Session ends")).wait_for()
        await opened.accessible("subscriptions, empty")

        # 2. Create a subscription to a local receiver, with the keyboard only
        await opened.tab_to("New subscription")
        await page.keyboard.press("Enter")
        await page.get_by_role("heading", name="New subscription").wait_for()
        await opened.accessible("new subscription")
        # (typing on a focused <select> picks the option that starts so)
        await opened.tab_to("Webhook")
        await page.keyboard.type("Order Status")
        assert await page.get_by_label("Webhook").input_value() == "ORDER_STATUS"
        await opened.tab_to("Callback URL")
        await page.keyboard.type(receiver.url_for("/hook"))
        await opened.tab_to("Notification email")
        await page.keyboard.type("not an address")
        await opened.tab_to("Create subscription")
        await page.keyboard.press("Enter")
        # the API's userError shows next to its field, which gets the focus
        email = page.get_by_label("Notification email")
        await page.locator(".field-error:not([hidden])").first.wait_for()
        assert await email.get_attribute("aria-invalid") == "true"
        assert await page.evaluate("document.activeElement.name") == "notificationEmail"
        await opened.screenshot("create-error")
        await page.keyboard.press("Control+A")
        await page.keyboard.type("ops@demo.example")
        await opened.tab_to("Create subscription")
        await page.keyboard.press("Enter")
        dialog = page.get_by_role("dialog", name="Your signing secret")
        await dialog.wait_for()
        secret = await page.locator("#signing-secret").input_value()
        assert secret.startswith("whsec_")
        assert "standardwebhooks" in await dialog.locator("pre").inner_text()
        await opened.accessible("signing secret dialog")
        await opened.screenshot("secret")
        await opened.tab_to("I have stored it")
        await page.keyboard.press("Enter")
        await dialog.wait_for(state="detached")
        card = page.locator(".card", has_text=receiver.url_for("/hook"))
        await card.wait_for()
        assert "Active" in await card.inner_text()
        await opened.screenshot("subscriptions")

        # 3. Publish an event and watch its delivery turn SUCCEEDED live
        await opened.go("#/deliveries")
        await page.get_by_text("Live updates: on").wait_for(timeout=WAIT_MS)
        publish(server, "ORDER-1")
        await row(page, "ORDER-1").locator(".status-succeeded").wait_for(timeout=WAIT_MS)
        await page.locator("#announcer", has_text="ORDER-1").wait_for(state="attached")
        await opened.accessible("delivery log")
        await opened.screenshot("delivery-live")

        # 4. The receiver fails: the attempts show their errors
        receiver.script("/hook", respond(500, "database down"))
        publish(server, "ORDER-2")
        failing = row(page, "ORDER-2")
        await failing.locator(".status-failed").wait_for(timeout=WAIT_MS)
        await failing.get_by_role("button", name=re.compile("^Attempts")).click()
        attempts = page.locator(".attempts-row:not([hidden]) .attempt")
        await attempts.nth(1).wait_for(timeout=WAIT_MS)
        for attempt in await attempts.all():
            text = await attempt.inner_text()
            assert "HTTP 500" in text and "database down" in text and "500" in text, text
            # ...and the request as it was sent: its signed headers and its body
            assert "webhook-signature" in text and "webhook-timestamp" in text, text
            assert '"order_id"' in text, text
        await opened.accessible("attempts")
        await opened.screenshot("attempts")

        # 5. Redeliver, and the new attempt arrives
        receiver.script("/hook", respond(200, "recovered"))
        toggle = failing.get_by_role("button", name=re.compile("^Attempts"))
        await toggle.evaluate("button => { button.dataset.probe = 'before the update' }")
        await failing.get_by_role("button", name=re.compile("^Redeliver")).click()
        await failing.locator(".status-succeeded").wait_for(timeout=WAIT_MS)
        # ...the row updated around its buttons, not over them: a click or the focus that
        # meets a live update stays on the button it was on
        assert await failing.locator("button[data-probe='before the update']").count() == 1
        await page.locator(".attempt", has_text="cycle 2").wait_for(timeout=WAIT_MS)
        assert "recovered" in await page.locator(".attempt", has_text="cycle 2").inner_text()
        await opened.screenshot("redelivered")

        # 5b. ... or recover every failed delivery since a time
        receiver.script("/hook", respond(503, "down again"))
        publish(server, "ORDER-3")
        await row(page, "ORDER-3").locator(".status-failed").wait_for(timeout=WAIT_MS)
        receiver.script("/hook", respond(200, "recovered"))
        recover = page.locator("form.recover")
        await recover.get_by_label("Subscription").select_option(label=receiver.url_for("/hook"))
        since = await page.evaluate(TEN_MINUTES_AGO)
        await recover.get_by_label("Failed deliveries created since").fill(since)
        await recover.get_by_role("button", name="Redeliver failed").click()
        await recover.get_by_text("1 failed delivery is being sent again.").wait_for()
        await row(page, "ORDER-3").locator(".status-succeeded").wait_for(timeout=WAIT_MS)

        # 6. The other company's data is nowhere
        for screen in ("#/subscriptions", "#/deliveries", "#/catalogue"):
            await opened.go(screen)
            await page.wait_for_load_state("networkidle")
            dom = await page.content()
            for theirs in ("OTHER-COMPANY", "/other-company", other_id, "Other Realty"):
                assert theirs not in dom, f"{screen} shows {theirs}"
        await opened.accessible("catalogue")
        await opened.screenshot("catalogue")
        await opened.go(f"#/subscriptions/{other_id}")
        await page.get_by_role("heading", name="Subscription not found").wait_for()
        await opened.go(f"#/deliveries?subscription={other_id}")
        await page.get_by_text("No deliveries match.").wait_for()

        # ... and all of it happened in one document, with no reload
        assert await page.evaluate("window.__sameDocument") is True

        # Readable at 360 px
        await page.set_viewport_size({"width": 360, "height": 800})
        await opened.go("#/deliveries?status=SUCCEEDED")
        await row(page, "ORDER-2").wait_for()
        await opened.accessible("delivery log at 360 px")
        await opened.screenshot("narrow-360")
        overflow = await page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= 360, f"the page is {overflow} px wide at 360 px"


@needs_chromium
async def test_hostile_receiver_output_is_shown_as_text(
    server: DevServer, receiver: Receiver
) -> None:
    # Given a receiver whose answer is markup, a subscriber's description and a subject
    receiver.script("/hostile", respond(500, HOSTILE_BODY, headers={"x-hostile": HOSTILE_HEADER}))
    subscribe(server, receiver.url_for("/hostile"), HOSTILE_HEADER)
    publish(server, "<script>window.__pwned=1</script>")
    receiver.wait_for(2, timeout=10)

    # When the person opens the failed delivery's attempts
    async with portal(server, mint_link(server)) as opened:
        page = opened.page
        await page.get_by_text(HOSTILE_HEADER).first.wait_for()
        await opened.go("#/deliveries")
        hostile_row = row(page, "<script>window.__pwned=1</script>")
        await hostile_row.locator(".status-failed").wait_for(timeout=WAIT_MS)
        await hostile_row.get_by_role("button", name=re.compile("^Attempts")).click()
        bodies = page.locator(".attempts-row:not([hidden]) .response-body")
        await bodies.nth(1).wait_for(timeout=WAIT_MS)
        await opened.screenshot("hostile")

        # Then every piece of it is visible literally, and none of it ran
        assert await bodies.all_inner_texts() == [HOSTILE_BODY, HOSTILE_BODY]
        assert await page.evaluate("typeof window.__pwned") == "undefined"
        elements = await page.evaluate(
            "[document.querySelectorAll('img').length, document.scripts.length]"
        )
        assert elements == [0, 1], "markup from the API became elements"
        # It was never parsed as HTML: no CSP refusal had to stop it.
        assert [line for line in opened.console if "Content Security Policy" in line] == []


@needs_chromium
async def test_a_read_only_link_changes_nothing_and_an_ended_session_says_so(
    server: DevServer, receiver: Receiver
) -> None:
    subscribe(server, receiver.url_for("/ro"), "RO")
    publish(server, "RO-1")
    receiver.wait_for(1, timeout=10)

    async with portal(server, mint_link(server, "READ_ONLY")) as opened:
        page = opened.page
        # The page says read-only and offers no control that would change something
        await page.get_by_text("Read-only", exact=True).wait_for()
        await page.locator(".card", has_text="RO").wait_for()
        for screen in ("#/subscriptions", "#/deliveries"):
            await opened.go(screen)
            await page.wait_for_load_state("networkidle")
            await opened.accessible(f"read-only {screen}")
            for label in ("New subscription", "Pause", "Delete", "Rotate secret", "Redeliver"):
                assert await page.get_by_role("button", name=re.compile(f"^{label}")).count() == 0
                assert await page.get_by_role("link", name=label).count() == 0
        await row(page, "RO-1").wait_for()
        await opened.screenshot("read-only")
        await opened.go("#/subscriptions/new")
        await page.get_by_text("Read-only: this session cannot create subscriptions.").wait_for()

        # When the session is gone (its cookie cleared), the next call says so
        await page.context.clear_cookies()
        await opened.go("#/catalogue")
        await page.get_by_role("heading", name="Your session has ended").wait_for(timeout=WAIT_MS)
        assert "Ask for a new link" in await page.locator("main").inner_text()
        assert await page.locator("#nav").is_hidden()
        await opened.accessible("session ended")
        await opened.screenshot("session-ended")


EMBED = Path(__file__).resolve().parents[2] / "examples" / "portal" / "embed.html"
SET_ORIGINS = """
mutation($origins: [String!]!) {
  setPortalEmbedOrigins(origins: $origins) {
    portalSettings { embedOrigins } userErrors { message } }
}
"""


@contextmanager
def customer_page(html: str) -> Iterator[str]:
    """The customer's own web server on 127.0.0.1 serving one page; yields its origin."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@needs_chromium
async def test_the_embed_example_shows_the_portal_in_a_customer_page(
    server: DevServer, receiver: Receiver
) -> None:
    from playwright.async_api import async_playwright

    assert CHROMIUM is not None, "CI must have chromium: apt-get install chromium"
    subscribe(server, receiver.url_for("/hook"), "Order updates to our CRM")
    publish(server, "332818")
    receiver.wait_for(1, timeout=10)
    # Given examples/portal/embed.html with a fresh link, served from a listed origin
    html = EMBED.read_text(encoding="utf-8").replace("PORTAL_LINK", mint_link(server))
    with customer_page(html) as origin:
        listed = graphql(server.base, server.company_key, SET_ORIGINS, {"origins": [origin]})
        assert listed["setPortalEmbedOrigins"]["userErrors"] == []
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_FLAGS
            )
            try:
                page = await browser.new_page(viewport={"width": 1100, "height": 700})
                # When the customer's page is opened
                await page.goto(origin)
                frame = page.frame_locator("iframe")
                # Then the portal shows inside it, with the company's data
                await frame.get_by_text("Order updates to our CRM").wait_for(timeout=WAIT_MS)
                await frame.get_by_role("link", name="Delivery log").click()
                await frame.locator("td .status-succeeded").first.wait_for(timeout=WAIT_MS)
                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "portal-embedded.png"))
            finally:
                await browser.close()


@needs_chromium
async def test_managing_a_subscription(server: DevServer, receiver: Receiver) -> None:
    subscription_id = subscribe(server, receiver.url_for("/manage"), "Managed")
    async with portal(server, mint_link(server)) as opened:
        page = opened.page
        card = page.locator(".card", has_text="Managed")

        # Edit: a filter that is not JSON is refused at its field, a valid one is tested
        await card.get_by_role("link", name="Edit Managed").click()
        await page.get_by_role("heading", name="Managed").wait_for()
        await opened.accessible("edit subscription")
        content_filter = page.get_by_label("Content filter (JSON)")
        await content_filter.fill('{"order_status": ')
        await page.get_by_role("button", name="Test filter on the sample payload").click()
        assert await content_filter.get_attribute("aria-invalid") == "true"
        await page.get_by_text("Not valid JSON").wait_for()
        await content_filter.fill('{"order_status": {"$in": ["completed"]}}')
        await page.get_by_role("button", name="Test filter on the sample payload").click()
        await page.get_by_text("The sample payload does not match").wait_for()
        await page.get_by_label("Description").fill("Managed, renamed")
        await page.get_by_role("button", name="Add custom header").click()
        await page.locator("[data-field='headers.0.name']").fill("Authorization")
        await page.locator("[data-field='headers.0.value']").fill("Bearer s3cret-value")
        await page.get_by_role("button", name="Save changes").click()
        await page.get_by_text("Saved.").wait_for()
        await page.get_by_role("heading", name="Managed, renamed").wait_for()
        assert "s3cret-value" not in await page.content()
        assert await page.get_by_label("Value").get_attribute("placeholder") == (
            "unchanged (••••alue)"
        )
        await opened.screenshot("edit")

        # Pause, and resume
        await page.get_by_role("button", name="Pause Managed, renamed").click()
        await page.get_by_role("button", name="Resume Managed, renamed").wait_for()
        await page.get_by_role("button", name="Resume Managed, renamed").click()
        await page.get_by_role("button", name="Pause Managed, renamed").wait_for()

        # A test event reaches the receiver, with the header
        receiver.clear()
        await page.get_by_role("button", name="Send a test event to Managed, renamed").click()
        await page.get_by_text("Test event sent").wait_for()
        [sent] = receiver.wait_for(1, timeout=10, path="/manage")
        assert sent.headers["authorization"] == "Bearer s3cret-value"

        # Rotate: asked first, then the new secret shown once
        await page.get_by_role(
            "button", name="Rotate the signing secret of Managed, renamed"
        ).click()
        await page.get_by_role("dialog", name="Rotate the signing secret?").wait_for()
        await opened.accessible("confirmation")
        await page.get_by_role("button", name="Rotate", exact=True).click()
        await page.get_by_role("dialog", name="Your signing secret").wait_for()
        assert (await page.locator("#signing-secret").input_value()).startswith("whsec_")
        await page.keyboard.press("Escape")
        await page.get_by_role("dialog").wait_for(state="detached")

        # Delete: Cancel keeps it, Delete removes it
        delete = page.get_by_role("button", name="Delete Managed, renamed")
        await delete.click()
        await page.get_by_role("button", name="Cancel").click()
        await page.get_by_role("dialog").wait_for(state="detached")
        # the focus is back on the button that opened the dialog
        assert await page.evaluate("document.activeElement.textContent") == "Delete"
        await delete.click()
        await page.get_by_role("dialog").get_by_role("button", name="Delete").click()
        await page.get_by_text("Deleted Managed, renamed.").wait_for()
        await page.get_by_text("No subscriptions yet.").wait_for()
    remaining = graphql(
        server.base,
        server.company_key,
        "query($id: ID!) { webhookSubscription(id: $id) { id } }",
        {"id": subscription_id},
    )
    assert remaining["webhookSubscription"] is None


@needs_chromium
async def test_live_updates_come_back_after_the_server_closes_the_socket(
    database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    # Given a service that closes every websocket after 2 s (1001, "reconnect")
    dev = start_dev(database_url, tmp_path, WEBHOOKS_WS_MAX_LIFETIME_SECONDS="2", **FAST)
    server = next(dev)
    try:
        subscribe(server, receiver.url_for("/live"), "Live")
        async with portal(server, mint_link(server)) as opened:
            page = opened.page
            sockets: list[Any] = []
            page.on("websocket", lambda socket: sockets.append(socket))
            await opened.go("#/deliveries")
            await page.get_by_text("Live updates: on").wait_for(timeout=WAIT_MS)

            # When the socket is closed under the page, and reopened by it
            for _ in range(100):
                if len(sockets) >= 2:
                    break
                await page.wait_for_timeout(100)
            assert len(sockets) >= 2, "the page did not open a new socket"
            assert sockets[0].is_closed()
            await page.get_by_text("Live updates: on").wait_for(timeout=WAIT_MS)

            # Then what is published afterwards still shows live
            publish(server, "AFTER-RECONNECT")
            await (
                row(page, "AFTER-RECONNECT").locator(".status-succeeded").wait_for(timeout=WAIT_MS)
            )
    finally:
        dev.close()
