"""GraphQL errors with the contract's ``extensions.code`` values."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from graphql import GraphQLError

from app.core.errors import InvalidArgument


def unauthenticated() -> GraphQLError:
    return GraphQLError(
        "Missing or invalid API key: send `Authorization: Bearer <key>`.",
        extensions={"code": "UNAUTHENTICATED"},
    )


def forbidden(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "FORBIDDEN"})


def bad_user_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


@contextmanager
def arguments_checked() -> Iterator[None]:
    """A malformed id, cursor or page size in the block becomes a BAD_USER_INPUT error."""
    try:
        yield
    except InvalidArgument as error:
        raise bad_user_input(str(error)) from None
