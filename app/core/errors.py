"""Errors the domain reports to callers.

``UserError`` is bad input, returned (not raised) in mutation payloads with a field path
and a code from the contract. ``InvalidInput`` carries a list of them when a domain
function refuses to write anything. ``InvalidArgument`` is a malformed id or cursor in a
query: the GraphQL layer turns it into a clear GraphQL error (extensions.code BAD_USER_INPUT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

UserErrorCode = Literal[
    "INVALID",
    "REQUIRED",
    "NOT_FOUND",
    "DUPLICATE",
    "UNKNOWN_WEBHOOK",
    "FORBIDDEN_TARGET",
    "TOO_LARGE",
]


@dataclass(frozen=True)
class UserError:
    """One problem with one input field."""

    field: tuple[str, ...]
    message: str
    code: UserErrorCode


class InvalidInput(Exception):
    """The input was refused; nothing was written."""

    def __init__(self, errors: list[UserError]) -> None:
        super().__init__("; ".join(error.message for error in errors))
        self.errors = errors


class InvalidArgument(ValueError):
    """A malformed id, cursor or argument of a query."""


def not_found(field: tuple[str, ...], noun: str) -> InvalidInput:
    """The uniform answer for a missing id and for another company's id."""
    return InvalidInput([UserError(field, f"No {noun} with this id.", "NOT_FOUND")])
