"""The assembled Strawberry schema and its protective extensions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import strawberry
from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig

from schema.masking import MaskUnexpectedErrors
from schema.mutation import Mutation
from schema.nul_characters import RefuseNulCharacters
from schema.query import Query
from schema.subscription import Subscription

SDL_PATH = Path(__file__).with_name("schema.graphql")

MAX_DEPTH = 10
MAX_TOKENS = 2000
MAX_ALIASES = 15


def build_schema(*, production: bool = False) -> strawberry.Schema:
    """The API schema; production turns introspection off."""
    # Factories, not instances: Strawberry builds fresh extensions for each request.
    extensions: list[Any] = [
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
    ]
    if production:
        extensions.append(DisableIntrospection)
    extensions += [RefuseNulCharacters, MaskUnexpectedErrors]
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
    )


def export_sdl() -> str:
    """The schema as SDL, as checked in at ``schema/schema.graphql``."""
    return build_schema().as_str() + "\n"
