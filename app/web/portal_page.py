"""The portal's page and its static files, served by this process (no CDN, no build step).

The page (``app/web/portal/index.html``) is one HTML shell; everything it shows comes from
the public GraphQL API, which ``portal.js`` calls with the session cookie and the CSRF
token this module writes into the page. ``app.web.portal_access`` decides who gets the
page and with which headers; this module only renders it.
"""

from __future__ import annotations

import html
from importlib import resources
from pathlib import Path

from starlette.staticfiles import StaticFiles

ASSETS_URL = "/portal/assets"


def static_files() -> StaticFiles:
    """``app/web/portal/``: the scripts and styles, mounted at ``ASSETS_URL``."""
    return StaticFiles(directory=Path(str(resources.files("app.web") / "portal")))


def render(*, csrf_token: str, access: str, company_name: str) -> str:
    """The page for one session: ``access`` is ``READ_ONLY`` or ``FULL``.

    Every value is HTML-escaped: a company name is text a customer chose.
    """
    template = (resources.files("app.web") / "portal" / "index.html").read_text(encoding="utf-8")
    return (
        template.replace("__ASSETS__", ASSETS_URL)
        .replace("__CSRF_TOKEN__", html.escape(csrf_token, quote=True))
        .replace("__ACCESS__", html.escape(access, quote=True))
        .replace("__COMPANY_NAME__", html.escape(company_name, quote=True))
    )
