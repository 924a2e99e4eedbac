"""``webhooks portal-link`` and ``webhooks company portal-origins`` as an operator runs them,
against ``webhooks serve``: the link opens the portal once, framed by the listed origins,
and ``webhooks key revoke`` ends the sessions of the key's links."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.core.secret_box import generate_key
from app.domain.api_keys import prefix_of
from tests.acceptance.processes import Api, Processes, run_cli, seed_tenants, service_environment

CREATE_LINK = "mutation { createPortalLink { link { url } userErrors { code } } }"


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path / "logs") as started:
        yield started


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return service_environment(database_url, tmp_path / "data", generate_key())


def test_a_cli_link_opens_the_portal_once_framed_by_the_listed_origins(
    database_url: str, env: dict[str, str], processes: Processes
) -> None:
    seed_tenants(database_url)
    server = processes.serve(env)
    cli_env = {**env, "WEBHOOKS_PUBLIC_URL": server.url("")}

    # Given two embed origins and a read-only link, both from the CLI
    origins = run_cli(
        "company",
        "portal-origins",
        "company-a",
        "https://app.acme.example",
        "http://localhost:3000",
        "--json",
        env=cli_env,
    )
    assert origins.json() == {
        "companyId": "company-a",
        "embedOrigins": ["https://app.acme.example", "http://localhost:3000"],
    }
    minted = run_cli(
        "portal-link",
        "--company",
        "company-a",
        "--read-only",
        "--expires-in",
        "60",
        "--json",
        env=cli_env,
    )
    link = minted.json()
    assert link["access"] == "READ_ONLY"
    assert link["url"].startswith(server.url("/portal/open?token="))

    # When a browser opens it
    with httpx.Client(timeout=5) as browser:
        opened = browser.get(link["url"])
        page = browser.get(server.url("/portal/"))
        again = httpx.get(link["url"], timeout=5)

    # Then the page is the company's, framed only by those origins, and the link is spent
    assert opened.status_code == 303
    assert page.status_code == 200 and "Company A" in page.text and "READ_ONLY" in page.text
    policy = page.headers["content-security-policy"]
    assert policy.endswith("frame-ancestors https://app.acme.example http://localhost:3000")
    assert again.status_code == 403


def test_cli_refusals_name_the_argument_and_exit_2(database_url: str, env: dict[str, str]) -> None:
    seed_tenants(database_url)

    too_long = run_cli("portal-link", "--company", "company-a", "--expires-in", "3601", env=env)
    injected = run_cli(
        "company",
        "portal-origins",
        "company-a",
        "https://ok.example",
        "https://x.example; script-src *",
        env=env,
    )
    unknown = run_cli("portal-link", "--company", "nobody", env=env)

    assert too_long.returncode == 2
    assert "--expires-in: Must be 1 to 3600 seconds." in too_long.stderr
    assert injected.returncode == 2 and "ORIGIN 2: " in injected.stderr
    assert unknown.returncode == 1 and "no company with id 'nobody'" in unknown.stderr
    for result in (too_long, injected, unknown):
        assert "Traceback" not in result.stderr and result.stdout == ""


def test_key_revoke_ends_the_sessions_of_the_keys_links(
    database_url: str, env: dict[str, str], processes: Processes
) -> None:
    tenants = seed_tenants(database_url)
    server = processes.serve(env)
    with Api(server.url("")) as api:
        url = api.data(CREATE_LINK, key=tenants.key_a)["createPortalLink"]["link"]["url"]
    # (the server's own address: WEBHOOKS_PUBLIC_URL is unset in development)
    path = url.split("/portal/open", 1)[1]
    with httpx.Client(timeout=5) as browser:
        assert browser.get(server.url("/portal/open" + path)).status_code == 303
        assert browser.get(server.url("/portal/")).status_code == 200

        revoked = run_cli("key", "revoke", str(prefix_of(tenants.key_a)), env=env)
        after = browser.get(server.url("/portal/"))

    assert revoked.returncode == 0
    assert after.status_code == 401 and "Company A" not in after.text
