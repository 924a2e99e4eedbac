"""The domain's enums as GraphQL enums: the same classes, exposed, not copies.

A GraphQL type that names one of them imports it from here, so that it is exposed
(with its descriptions) before Strawberry reads the annotation: Strawberry makes a
bare enum of an annotation it meets first, and then finds two definitions of one name.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import TypeVar

import strawberry
from strawberry.types.enum import has_enum_definition

from app.core.delivery_ordering import DeliveryOrdering
from app.core.delivery_status import DeliveryStatus
from app.core.errors import UserErrorCode
from app.core.portal_tokens import PortalAccess

__all__ = ["DeliveryOrdering", "DeliveryStatus", "PortalAccess", "UserErrorCode"]

E = TypeVar("E", bound=Enum)


def _expose(enum: type[E], descriptions: Mapping[E, str] | None = None) -> None:
    """Make a domain enum a GraphQL enum as it is, each value described if given."""
    exposed = strawberry.enum(enum)
    if not has_enum_definition(exposed):
        raise TypeError(f"strawberry.enum did not define {enum.__name__} as a GraphQL enum")
    if descriptions is not None:
        for value in exposed.__strawberry_definition__.values:
            value.description = descriptions[enum[value.name]]


_expose(UserErrorCode)
_expose(
    PortalAccess,
    {
        PortalAccess.READ_ONLY: "The portal shows everything and changes nothing: every "
        "mutation is refused (FORBIDDEN).",
        PortalAccess.FULL: "The portal may do what the company's key may, except mint "
        "portal links and change embed origins.",
    },
)
# What each status means to a client is the API's wording, so it is written here.
_expose(
    DeliveryStatus,
    {
        DeliveryStatus.PENDING: "Created, first attempt not made yet.",
        DeliveryStatus.RETRYING: "At least one attempt failed; the next one is scheduled.",
        DeliveryStatus.SUCCEEDED: "A 2xx response was received.",
        DeliveryStatus.FAILED: "Every attempt failed; nothing more will be sent. "
        "The notification email went out.",
        DeliveryStatus.CANCELLED: "Stopped before success, e.g. its subscription was deleted.",
        DeliveryStatus.HELD: "Waits for an earlier delivery of its subject to end (PER_SUBJECT "
        "ordering; `waitingFor` says which); nothing is sent until then.",
    },
)
_expose(
    DeliveryOrdering,
    {
        DeliveryOrdering.NONE: "Deliveries are sent as they come, in no promised order.",
        DeliveryOrdering.PER_SUBJECT: "Deliveries that share a subject (an order id) are sent "
        "strictly in publish order: each waits (HELD) until every earlier one of its subject "
        "has ended. Other subjects never wait for it. Events without a subject are unordered.",
    },
)
