"""The viewer: the company a COMPANY key manages, and none for a PUBLISHER key."""

from __future__ import annotations

import pytest

from app.core.viewer import Viewer


def test_a_company_viewer_manages_its_own_company() -> None:
    viewer = Viewer(role="COMPANY", key_prefix="pwk_0000abcd", company_id="acme")

    assert viewer.own_company == "acme"
    assert viewer.read_scope == "acme"


def test_a_publisher_manages_no_company_and_asking_for_one_raises() -> None:
    # Given the order system's key, which reads every company's events
    viewer = Viewer(role="PUBLISHER", key_prefix="pwk_0000beef")
    assert viewer.read_scope is None

    # When a company's own configuration is asked of it, then that is refused: passing on
    # no company would read as "every company" to the queries that take None so
    with pytest.raises(ValueError, match="PUBLISHER key pwk_0000beef has no company"):
        viewer.own_company  # noqa: B018 -- the property is the call under test
