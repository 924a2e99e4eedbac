"""GraphiQL, served from this process: it works with no internet access.

The React and GraphiQL bundles come from the ``graphene-django-graphiql-static`` wheel
(its static files only; Django is not involved) and are mounted under
``/graphiql/static``. The page sends the key from the header editor as
``Authorization`` and opens websockets with it in the ``connection_init`` payload: the
key as the editor holds it when a subscription runs, with a new websocket for a new key.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

STATIC_URL = "/graphiql/static"
DEFAULT_HEADERS = '{\n  "Authorization": "Bearer <paste an API key>"\n}'


def static_files() -> StaticFiles:
    folder = resources.files("graphene_django_graphiql_static") / "static"
    return StaticFiles(directory=Path(str(folder)) / "graphene_django_graphiql_static")


def page() -> HTMLResponse:
    """The GraphiQL page (``app/graphiql.html``) with its asset URLs and default headers."""
    template = (resources.files("app.web") / "graphiql.html").read_text(encoding="utf-8")
    html = template.replace("STATIC", STATIC_URL).replace("HEADERS", json.dumps(DEFAULT_HEADERS))
    return HTMLResponse(html)
