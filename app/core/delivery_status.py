"""A delivery's status: one definition for the domain, the live updates and the GraphQL enum.

Members are strings: the database's ``status`` column and the NOTIFY payloads hold
the same text, and a member compares equal to it.
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    RETRYING = "RETRYING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    HELD = "HELD"
