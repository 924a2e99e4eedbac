"""Viewer: who is calling, as established from their API key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["COMPANY", "PUBLISHER"]


@dataclass(frozen=True)
class Viewer:
    """An authenticated caller. COMPANY viewers carry their company; PUBLISHER ones don't."""

    role: Role
    key_prefix: str
    company_id: str | None = None
    company_name: str | None = None

    @property
    def is_publisher(self) -> bool:
        return self.role == "PUBLISHER"

    @property
    def read_scope(self) -> str | None:
        """The company whose events and deliveries this viewer may read (None: all)."""
        return None if self.is_publisher else self.company_id
