"""``webhooks portal-link`` and ``webhooks company portal-origins``: the portal, for operators.

    webhooks portal-link --company ID [--read-only] [--expires-in SECONDS] [--json]
    webhooks company portal-origins ID [ORIGIN ...] [--json]

A link minted here belongs to no API key: it ends when it expires (its session when that
does), and no key revocation ends it early. The rules are :mod:`app.domain.portal`'s and
:func:`app.domain.companies.set_portal_embed_origins`'s; a refusal prints what and where
and exits 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from app.core.errors import Field, InvalidInput
from app.core.portal_tokens import PortalAccess
from app.core.settings import Settings
from app.domain import companies, portal
from app.run.command import CommandError, UsageError, emit, with_services
from app.store.services import Services

T = TypeVar("T")

# The CLI's names for the domain's fields, in refusals.
ARGUMENTS = {"expires_in_seconds": "--expires-in", "origins": "ORIGIN", "company_id": "ID"}


def add_commands(commands: Any, company: Any) -> None:
    """Register ``portal-link`` with the ``webhooks`` parser and ``portal-origins`` with
    its ``company`` actions."""
    origins = company.add_parser(
        "portal-origins",
        help="set the origins that may frame a company's portal (none given: no embedding)",
    )
    origins.add_argument("company_id", metavar="ID")
    origins.add_argument(
        "origins", metavar="ORIGIN", nargs="*", help="e.g. https://app.acme.example"
    )
    origins.add_argument("--json", action="store_true")
    origins.set_defaults(handler=_portal_origins)

    link = commands.add_parser(
        "portal-link", help="mint a single-use link that opens a company's portal"
    )
    link.add_argument("--company", dest="company_id", required=True)
    link.add_argument("--read-only", action="store_true", help="the portal changes nothing")
    link.add_argument(
        "--expires-in",
        type=int,
        default=None,
        metavar="SECONDS",
        help="default and cap: WEBHOOKS_PORTAL_LINK_MAX_SECONDS",
    )
    link.add_argument("--json", action="store_true")
    link.set_defaults(handler=_portal_link)


def _portal_origins(args: argparse.Namespace, settings: Settings) -> int:
    async def work(services: Services) -> tuple[str, ...]:
        return await companies.set_portal_embed_origins(
            services.db, args.company_id, args.origins, allow_http=not settings.is_production
        )

    saved = with_services(settings, _refusals_as_usage(work))
    human = "\n".join(saved) or f"no page may frame the portal of {args.company_id}"
    emit(args, {"companyId": args.company_id, "embedOrigins": list(saved)}, human)
    return 0


def _portal_link(args: argparse.Namespace, settings: Settings) -> int:
    access = PortalAccess.READ_ONLY if args.read_only else PortalAccess.FULL

    async def work(services: Services) -> portal.PortalLink:
        if await companies.get_company(services.db, args.company_id) is None:
            raise CommandError(f"no company with id {args.company_id!r}")
        return await portal.create_link(
            services.db,
            portal.PortalLimits.of(settings),
            portal.LinkGrant(args.company_id, None, access),
            args.expires_in,
        )

    link = with_services(settings, _refusals_as_usage(work))
    emit(args, link_json(link), f"{describe(link)}:\n{link.url}")
    return 0


def link_json(link: portal.PortalLink) -> dict[str, Any]:
    """A link as ``--json`` prints it (the GraphQL field names)."""
    return {
        "url": link.url,
        "expiresAt": link.expires_at.isoformat(),
        "access": link.access.value,
        "sessionExpiresInSeconds": link.session_expires_in_seconds,
    }


def describe(link: portal.PortalLink) -> str:
    """One line about a link, never its URL."""
    return (
        f"{link.access.value} portal link (opens once, until "
        f"{link.expires_at.isoformat(timespec='seconds')})"
    )


def _refusals_as_usage(
    work: Callable[[Services], Awaitable[T]],
) -> Callable[[Services], Awaitable[T]]:
    """``work`` with the domain's InvalidInput as a UsageError naming the CLI's arguments."""

    async def run(services: Services) -> T:
        try:
            return await work(services)
        except InvalidInput as error:
            raise UsageError(
                "; ".join(f"{_argument(each.field)}: {each.message}" for each in error.errors)
            ) from None

    return run


def _argument(field: Field) -> str:
    name, *rest = field
    position = f" {int(rest[0]) + 1}" if rest and isinstance(rest[0], int) else ""
    return ARGUMENTS.get(str(name), str(name)) + position
