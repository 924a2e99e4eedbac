"""The portal's files keep to the rules a browser test cannot see all of.

- Untrusted text is text: no script in ``app/web/portal/`` names an HTML sink or a way
  to run a string as code (the hostile-receiver browser test shows the effect; this
  keeps every code path to it closed, including ones no test walks).
- Offline and CSP-clean: modules import only their neighbours, the page loads only its
  own assets, and holds no inline script, style or handler.
- The verification snippet shown with a new signing secret verifies a real signature.
"""

from __future__ import annotations

import re
import time
from importlib import resources
from pathlib import Path

import pytest

from app.core import signing
from app.web import portal_page

PORTAL = Path(str(resources.files("app.web") / "portal"))
SCRIPTS = sorted(PORTAL.glob("*.js"))
# Each one turns a string into markup or code: none may appear, even in a comment.
FORBIDDEN = [
    "innerHTML",
    "outerHTML",
    "insertAdjacentHTML",
    "document.write",
    "eval(",
    "new Function",
    "setHTMLUnsafe",
    "parseHTMLUnsafe",
    "createContextualFragment",
    "DOMParser",
    "srcdoc",
    'setTimeout("',
    "setTimeout('",
    "javascript:",
]


def test_the_portal_has_its_scripts() -> None:
    assert {path.name for path in SCRIPTS} >= {
        "portal.js",
        "graphql.js",
        "dom.js",
        "subscriptions.js",
        "deliveries.js",
        "catalogue.js",
    }


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_no_script_turns_text_into_markup_or_code(script: Path) -> None:
    source = script.read_text(encoding="utf-8")
    found = [name for name in FORBIDDEN if name in source]
    assert found == [], f"{script.name} uses {found}: API text must go in as text nodes"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_modules_import_only_their_neighbours(script: Path) -> None:
    source = script.read_text(encoding="utf-8")
    imports = re.findall(r"""(?:import|from)\s*\(?\s*["']([^"']+)["']""", source)
    outside = [name for name in imports if not re.fullmatch(r"\./[a-z_]+\.js", name)]
    assert outside == [], f"{script.name} imports {outside}: the portal loads nothing else"
    for name in imports:
        assert (PORTAL / name[2:]).is_file(), f"{script.name} imports a missing {name}"


def test_the_page_loads_only_its_own_assets_and_holds_no_inline_code() -> None:
    page = portal_page.render(csrf_token="t", access="FULL", company_name="Acme")
    loads = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assert {"/portal/assets/portal.css", "/portal/assets/portal.js"} <= set(loads)
    outside = [url for url in loads if url != "#main" and not url.startswith("/portal/assets/")]
    assert outside == []
    for url in loads:
        if url.startswith("/portal/assets/"):
            assert (PORTAL / url.removeprefix("/portal/assets/")).is_file(), url
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == [], "inline <script>"
    assert "<style" not in page and " style=" not in page, "inline style"
    assert re.search(r"\son[a-z]+=", page) is None, "inline event handler"


def test_the_page_preloads_every_module() -> None:
    # Without it the browser finds the modules one import level after another.
    page = portal_page.render(csrf_token="t", access="FULL", company_name="Acme")
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/portal/assets/([^"]+)">', page))
    assert preloaded | {"portal.js"} == {path.name for path in SCRIPTS}


def test_the_css_loads_nothing() -> None:
    css = (PORTAL / "portal.css").read_text(encoding="utf-8")
    assert "url(" not in css and "@import" not in css


def test_the_verification_snippet_verifies_a_signed_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the Python the portal shows beside a new secret, as the person copies it
    source = (PORTAL / "secret.js").read_text(encoding="utf-8")
    snippet = re.search(
        r"// snippet-start\nconst VERIFY_SNIPPET = `(.*?)`;\n// snippet-end", source, re.S
    )
    assert snippet is not None
    code = snippet.group(1)
    assert "\\" not in code and "${" not in code, "a JS template would change the text"
    secret = signing.generate_secret()
    body = b'{"id": "evt_1", "data": {"order_id": 1}}'
    timestamp = int(time.time())
    headers = {
        "Webhook-Id": "msg_1",
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": signing.signature_header([secret], "msg_1", timestamp, body),
    }
    namespace: dict[str, object] = {}
    monkeypatch.setenv("SIGNING_SECRET", secret)
    # When it runs on a delivery signed with that secret, then on a tampered one
    exec(compile(code, "snippet.py", "exec"), namespace)  # the portal's own text
    verify = namespace["verify"]
    assert callable(verify)
    # Then the first is the event and the second is refused
    assert verify(body, headers) == {"id": "evt_1", "data": {"order_id": 1}}
    error = namespace["WebhookVerificationError"]
    assert isinstance(error, type)
    with pytest.raises(error):
        verify(body.replace(b"1}", b"2}"), headers)
