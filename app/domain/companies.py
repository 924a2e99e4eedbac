"""Companies: PlanOmatic's customers, the unit of isolation."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.core.embed_origins import checked_origins
from app.core.errors import WebhooksError, not_found
from app.store.database import Database, Row

_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class CompanyError(WebhooksError, ValueError):
    """A company could not be created as asked."""


@dataclass(frozen=True)
class Company:
    id: str
    name: str
    created_at: datetime


async def create_company(db: Database, name: str, company_id: str | None = None) -> Company:
    """Create a company; the id defaults to a random ``co_…``."""
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise CompanyError("a company name must have 1 to 200 characters")
    if company_id is None:
        company_id = "co_" + secrets.token_hex(8)
    elif not _ID_PATTERN.match(company_id):
        raise CompanyError(
            "a company id must have 1 to 64 characters, each a letter, digit, '_' or '-'"
        )
    row = await db.fetch_one("insert_company", id=company_id, name=name)
    if row is None:
        raise CompanyError(f"a company with id {company_id!r} already exists")
    return company_from_row(row)


async def get_company(db: Database, company_id: str) -> Company | None:
    row = await db.fetch_one("get_company", id=company_id)
    return company_from_row(row) if row else None


async def list_companies(db: Database) -> list[Company]:
    return [company_from_row(row) for row in await db.fetch_all("list_companies")]


async def companies_by_id(db: Database, ids: list[str]) -> dict[str, Company]:
    """The companies of ``ids`` that exist (DataLoader), as the database scope shows them."""
    rows = await db.fetch_all("get_companies", ids=ids)
    return {row["id"]: company_from_row(row) for row in rows}


async def set_portal_embed_origins(
    db: Database, company_id: str, origins: Sequence[str], *, allow_http: bool
) -> tuple[str, ...]:
    """Replace the origins that may frame a company's portal (``allow_http``: any http
    origin, as in development); InvalidInput at each bad one's index, or for no such
    company (one the database scope does not show)."""
    checked = checked_origins(origins, allow_http=allow_http)
    row = await db.fetch_one(
        "set_portal_embed_origins", company_id=company_id, origins=list(checked)
    )
    if row is None:
        raise not_found(("company_id",), "company")
    return tuple(row["portal_embed_origins"])


def company_from_row(row: Row) -> Company:
    return Company(id=row["id"], name=row["name"], created_at=row["created_at"])
