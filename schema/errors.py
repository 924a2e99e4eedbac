"""GraphQL errors with the contract's ``extensions.code`` values, and the domain's user
errors as the API reports them: at the GraphQL path of their field, in its wording."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from graphql import GraphQLError
from strawberry.utils.str_converters import to_camel_case

from app.core.errors import Field, InvalidArgument, JsonKey, UserError, UserErrorCode

FieldPaths = Mapping[str, tuple[str, ...]]
"""Where a mutation's arguments hold domain fields, by the domain's name: the GraphQL
path of each one that is not the ``input`` field of the same name."""

# What a client of the API can do about an error, said after the domain's message.
_HINTS: Mapping[UserErrorCode, str] = {
    UserErrorCode.UNKNOWN_WEBHOOK: "see webhookTypes for the keys",
}


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


def graphql_path(field: Field, paths: FieldPaths) -> list[str]:
    """A domain field's path in the mutation's arguments, e.g. ``("api_key_params", 0,
    "name")`` -> ``["input", "apiKeyParams", "0", "name"]``; names are camelCased as
    Strawberry names the fields; a :class:`JsonKey` (inside a JSON value) stays as sent:
    ``("payload", JsonKey("order_id"))`` -> ``["input", "payload", "order_id"]``."""
    name, *rest = field
    prefix = paths.get(str(name), ("input", to_camel_case(str(name))))
    return [
        *prefix,
        *(str(part) if isinstance(part, int | JsonKey) else to_camel_case(part) for part in rest),
    ]


def graphql_message(error: UserError) -> str:
    """The domain's message, with what the API offers about it (e.g. where to look)."""
    hint = _HINTS.get(error.code)
    return error.message if hint is None else f"{error.message.removesuffix('.')}; {hint}."
