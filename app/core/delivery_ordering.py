"""A subscription's delivery ordering: one definition for the domain and the GraphQL enum.

Members are strings, as the ``subscriptions.ordering`` column holds them.
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryOrdering(StrEnum):
    NONE = "NONE"
    PER_SUBJECT = "PER_SUBJECT"
