"""The portal's access: links that open once, the sessions they open, embed origins.

A COMPANY key (or the operator's CLI) mints a link: a single-use token, kept hashed,
that expires within ``PortalLimits.max_link_seconds``. Opening it consumes it in one
statement and starts a session bound to the company, the minting key and the access
level; the session id, too, is kept hashed. A revoked minting key refuses its unused
links and ends its sessions (every lookup joins the key).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.core.errors import InvalidInput, UserError, UserErrorCode
from app.core.portal_tokens import PortalAccess, new_secret, secret_hash, well_formed
from app.core.settings import Settings
from app.core.viewer import PortalGrant, Viewer
from app.domain.companies import set_portal_embed_origins
from app.store.database import Database

OPEN_PATH = "/portal/open"


@dataclass(frozen=True)
class PortalLimits:
    """What minting and opening links read of the settings."""

    public_origin: str | None
    max_link_seconds: int
    session_seconds: int
    allow_http_origins: bool

    @classmethod
    def of(cls, settings: Settings) -> PortalLimits:
        return cls(
            public_origin=settings.public_origin,
            max_link_seconds=settings.portal_link_max_seconds,
            session_seconds=settings.portal_session_seconds,
            allow_http_origins=not settings.is_production,
        )


@dataclass(frozen=True)
class LinkGrant:
    """Who a link is for: the company, the key that mints it (None: the operator)."""

    company_id: str
    key_prefix: str | None
    access: PortalAccess


@dataclass(frozen=True)
class PortalLink:
    """A minted link; ``url`` holds the only copy of its token."""

    url: str
    expires_at: datetime
    access: PortalAccess
    session_expires_in_seconds: int


@dataclass(frozen=True)
class PortalSession:
    """A session opened from a link: its viewer (a COMPANY caller with a portal grant) and
    the origins that may frame its pages."""

    viewer: Viewer
    embed_origins: tuple[str, ...]


@dataclass(frozen=True)
class OpenedSession:
    """A session just opened; ``session_id`` is the only copy, for the cookie."""

    session_id: str
    expires_at: datetime


def grant_for(viewer: Viewer, access: PortalAccess) -> LinkGrant:
    """A link for the caller's own company, minted by its key."""
    return LinkGrant(viewer.own_company, viewer.key_prefix, access)


async def create_link(
    db: Database, limits: PortalLimits, grant: LinkGrant, expires_in_seconds: int | None
) -> PortalLink:
    """Mint a link; InvalidInput for a lifetime out of range or no public URL configured."""
    lifetime = limits.max_link_seconds if expires_in_seconds is None else expires_in_seconds
    if not 1 <= lifetime <= limits.max_link_seconds:
        raise InvalidInput(
            [
                UserError(
                    ("expires_in_seconds",),
                    f"Must be 1 to {limits.max_link_seconds} seconds.",
                    UserErrorCode.INVALID,
                )
            ]
        )
    if limits.public_origin is None:
        raise InvalidInput(
            [
                UserError(
                    ("input",),
                    "Portal links need WEBHOOKS_PUBLIC_URL, the service's public address; "
                    "the operator has not set it.",
                    UserErrorCode.PORTAL_NOT_CONFIGURED,
                )
            ]
        )
    token = new_secret()
    row = await db.fetch_one(
        "insert_portal_link",
        token_hash=secret_hash(token),
        company_id=grant.company_id,
        api_key_prefix=grant.key_prefix,
        access=grant.access.value,
        expires_in_seconds=lifetime,
    )
    if row is None:  # pragma: no cover - an INSERT ... RETURNING returns its row
        raise RuntimeError("the portal link was not stored")
    return PortalLink(
        url=f"{limits.public_origin}{OPEN_PATH}?token={token}",
        expires_at=row["expires_at"],
        access=grant.access,
        session_expires_in_seconds=limits.session_seconds,
    )


async def open_link(db: Database, token: str, session_seconds: int) -> OpenedSession | None:
    """Consume a link and open its session; None for a token that is malformed, unknown,
    used, expired or of a revoked key (one answer for all: no oracle)."""
    if not well_formed(token):
        return None
    session_id = new_secret()
    async with db.transaction() as tx:
        link = await tx.fetch_one("consume_portal_link", token_hash=secret_hash(token))
        if link is None:
            return None
        row = await tx.fetch_one(
            "insert_portal_session",
            session_hash=secret_hash(session_id),
            company_id=link["company_id"],
            api_key_prefix=link["api_key_prefix"],
            access=link["access"],
            session_seconds=session_seconds,
        )
    if row is None:  # pragma: no cover - an INSERT ... RETURNING returns its row
        raise RuntimeError("the portal session was not stored")
    return OpenedSession(session_id=session_id, expires_at=row["expires_at"])


async def find_session(db: Database, session_id: str) -> PortalSession | None:
    """The live session of a presented id; None when malformed, unknown, expired or its
    minting key was revoked."""
    if not well_formed(session_id):
        return None
    row = await db.fetch_one("get_portal_session", session_hash=secret_hash(session_id))
    if row is None:
        return None
    company_id: str = row["company_id"]
    viewer = Viewer(
        role="COMPANY",
        # The rate limit's bucket: the minting key's, which the session spends from.
        key_prefix=row["api_key_prefix"] or f"portal:{company_id}",
        company_id=company_id,
        company_name=row["company_name"],
        portal=PortalGrant(access=PortalAccess(row["access"]), expires_at=row["expires_at"]),
    )
    return PortalSession(viewer=viewer, embed_origins=tuple(row["portal_embed_origins"]))


async def embed_origins(db: Database, viewer: Viewer) -> tuple[str, ...]:
    """The origins that may frame the caller's company's portal."""
    row = await db.fetch_one("get_portal_embed_origins", company_id=viewer.own_company)
    return tuple(row["portal_embed_origins"]) if row else ()


async def set_embed_origins(
    db: Database, limits: PortalLimits, viewer: Viewer, origins: Sequence[str]
) -> tuple[str, ...]:
    """Replace the caller's company's embed origins; InvalidInput at each bad one's index."""
    return await set_portal_embed_origins(
        db, viewer.own_company, origins, allow_http=limits.allow_http_origins
    )
