"""A delivery's status: one definition for the domain, the live updates and the GraphQL enum."""

from __future__ import annotations

from typing import Literal, get_args

DeliveryStatus = Literal["PENDING", "RETRYING", "SUCCEEDED", "FAILED", "CANCELLED"]
STATUSES: frozenset[str] = frozenset(get_args(DeliveryStatus))
FINISHED: frozenset[str] = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
