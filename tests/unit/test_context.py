"""The GraphQL context: each operation's copy keeps the caller and drops the caches."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any, cast

from app.core.viewer import Viewer
from app.store.services import Services
from schema.context import Context
from schema.execution import _fresh

VIEWER = Viewer(role="COMPANY", key_prefix="pwk_abc", company_id="acme", company_name="Acme")
# The loaders take the services' database only.
SERVICES = cast(Services, SimpleNamespace(db=object()))


def test_a_fresh_copy_keeps_every_field_and_makes_its_own_loaders() -> None:
    # Given a context whose loaders were used, with every field set
    values: dict[str, Any] = {
        field.name: object() for field in dataclasses.fields(Context) if field.init
    }
    values["services"] = SERVICES
    values["viewer"] = VIEWER
    context = Context(**values)
    used = context.loaders

    # When the executor takes a copy for an operation (or a subscription's update)
    copy = _fresh(context)

    # Then it is the same caller with loaders of its own
    assert {name: getattr(copy, name) for name in values} == values
    assert copy.loaders is not used and copy.loaders is copy.loaders


def test_a_websocket_context_gets_its_loaders_once_the_viewer_is_known() -> None:
    context = Context(services=SERVICES, viewer=None)
    context.viewer = VIEWER  # on_ws_connect, after the context was made

    assert context.loaders._viewer is VIEWER
