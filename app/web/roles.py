"""The role rule: which database scope an API caller's statements run in.

Row-level security (``app/store/database.py``) confines every statement of a request to
this scope, even one whose query forgot its company filter.
"""

from __future__ import annotations

from app.core.viewer import Viewer
from app.store.database import PUBLISHER_SCOPE, RowScope


def scope_for(viewer: Viewer | None) -> RowScope:
    """The database scope of a caller; no key at all gets a scope that sees no tenant row."""
    if viewer is not None and viewer.is_publisher:
        return PUBLISHER_SCOPE
    return RowScope("webhooks_api", viewer.company_id if viewer else None)
