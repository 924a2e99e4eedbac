"""L: the portal's delivery log in headless Chromium over F's million deliveries.

Each load is a fresh browser context (no cookie, no cache) opening a fresh portal link
of F's company with ``#/deliveries``, as a customer's iframe does: the link's redirect,
the page, its scripts, the session and company query, the subscriptions for the filter,
the first page of deliveries, drawn. The time is the page's own clock
(``performance.now()``, from the start of the navigation) when the first delivery row is
inserted, noted by a MutationObserver so that no round trip to the driver is counted.
Without Debian's chromium the phase says so and measures nothing.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

import httpx

from bench.api_scale import generate
from bench.stats import summary_ms
from bench.suite import Bench, start_api
from bench.tenants import GraphQLClient, company_key

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
MINT = "mutation { createPortalLink(input: {access: READ_ONLY}) { link { url } } }"
FIRST_ROW = """() => {
  const seen = () => document.querySelector('tr[data-delivery]');
  new MutationObserver((_, observer) => {
    if (seen() && window.__firstRow === undefined) {
      window.__firstRow = performance.now();
      observer.disconnect();
    }
  }).observe(document, { childList: true, subtree: true });
}"""


async def run(bench: Bench) -> dict[str, Any]:
    from app.store.services import open_services

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    title = "Portal delivery log in Chromium: link opened to first row drawn"
    if chromium is None:
        bench.log("[bench] L skipped: Debian's chromium is not installed")
        return {"title": title, "skipped": "chromium is not installed"}
    scale = bench.shared.get("scale")
    if scale is None:  # F did not run: its data set, made here
        database_url = bench.databases.create("portal")
        data = generate(database_url, bench.sizes.scale_rows, bench.sizes.scale_companies)
        scale = {
            "database_url": database_url,
            "company_id": f"scale-{bench.sizes.scale_companies // 2:03d}",
            "data": data,
        }
    async with open_services(bench.settings(scale["database_url"])) as services:
        key = await company_key(services, scale["company_id"])
    api, base_url = start_api(bench, scale["database_url"], "api-portal")
    first_rows: list[float] = []
    walls: list[float] = []
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            client = GraphQLClient(http, key)
            first_rows, walls = await _loads(bench, client, chromium)
    finally:
        api.stop()
    rows = scale["data"]["tables"].get("deliveries", {}).get("rows", 0)
    result = {
        "title": title,
        "company": scale["company_id"],
        "deliveries": rows,
        "loads": len(first_rows),
        # The page's own clock, navigation start to the first row in the DOM.
        "first_row": summary_ms(first_rows),
        # The driver's clock around goto + the row becoming visible (includes Playwright).
        "driver_wall": summary_ms(walls),
    }
    bench.log(f"[bench] L first row {result['first_row']}")
    return result


async def _loads(
    bench: Bench, client: GraphQLClient, chromium: str
) -> tuple[list[float], list[float]]:
    from playwright.async_api import async_playwright

    first_rows: list[float] = []
    walls: list[float] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            # One load before counting: Chromium's own start-up is not the portal's.
            for index in range(bench.sizes.portal_loads + 1):
                link = (await client.data(MINT))["createPortalLink"]["link"]["url"]
                context = await browser.new_context(viewport={"width": 1280, "height": 900})
                try:
                    page = await context.new_page()
                    await page.add_init_script(script=f"({FIRST_ROW})()")
                    started = time.perf_counter()
                    await page.goto(link + "#/deliveries")
                    await page.locator("tr[data-delivery]").first.wait_for(timeout=30_000)
                    wall = time.perf_counter() - started
                    first_row = await page.evaluate("window.__firstRow")
                finally:
                    await context.close()
                if index > 0:
                    first_rows.append(float(first_row) / 1000)
                    walls.append(wall)
        finally:
            await browser.close()
    return first_rows, walls
