"""Viewer: who is calling, as established from their API key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from app.core.portal_tokens import PortalAccess

Role = Literal["COMPANY", "PUBLISHER"]


@dataclass(frozen=True)
class PortalGrant:
    """What a portal session adds to its company's viewer: how much it may do, until when."""

    access: PortalAccess
    expires_at: datetime


@dataclass(frozen=True)
class Viewer:
    """An authenticated caller. COMPANY viewers carry their company; PUBLISHER ones don't."""

    role: Role
    key_prefix: str
    company_id: str | None = None
    company_name: str | None = None
    # Set when the caller is a portal session (a browser with the session cookie), not a
    # key: it may not mint links or change embed origins, and READ_ONLY changes nothing.
    portal: PortalGrant | None = None

    @property
    def is_portal_session(self) -> bool:
        return self.portal is not None

    @property
    def may_write(self) -> bool:
        """Whether this caller may run mutations (a READ_ONLY portal session may not)."""
        return self.portal is None or self.portal.access is PortalAccess.FULL

    @property
    def is_publisher(self) -> bool:
        return self.role == "PUBLISHER"

    @property
    def reads_configuration(self) -> bool:
        """Whether this viewer may read subscriptions' configuration and what receivers
        answered (callback URLs, notification emails, API key parameters, response
        bodies, attempt errors and URLs): a company, of its own. The order system needs
        to publish and to follow the status of what it published, nothing more, so a
        PUBLISHER key reads events and delivery statuses only (migration 0009 holds its
        database role to the same)."""
        return not self.is_publisher

    @property
    def own_company(self) -> str:
        """The company whose configuration this viewer manages (its subscriptions, their
        redelivery and test events). A PUBLISHER key manages none: the API refuses it
        before it gets here (``require_company`` in schema/context.py), so reaching this
        with one is a bug, and it raises rather than pass on no company at all."""
        if self.company_id is None:
            raise ValueError(f"the {self.role} key {self.key_prefix} has no company of its own")
        return self.company_id

    @property
    def read_scope(self) -> str | None:
        """The company whose events and deliveries this viewer may read (None: all)."""
        return None if self.is_publisher else self.company_id
