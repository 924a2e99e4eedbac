"""GraphQL errors with the contract's ``extensions.code`` values."""

from __future__ import annotations

from graphql import GraphQLError


def unauthenticated() -> GraphQLError:
    return GraphQLError(
        "Missing or invalid API key: send `Authorization: Bearer <key>`.",
        extensions={"code": "UNAUTHENTICATED"},
    )


def forbidden(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "FORBIDDEN"})


def bad_user_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})
