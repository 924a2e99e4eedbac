"""The assembled Strawberry schema and its protective extensions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import strawberry
from graphql import ASTValidationRule
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig

from schema.api_schema import ApiSchema
from schema.documents import CachedDocuments, DocumentCache
from schema.execution import executor_class
from schema.masking import MaskUnexpectedErrors
from schema.mutation import Mutation
from schema.nul_characters import RefuseNulCharacters
from schema.query import Query
from schema.subscription import Subscription

SDL_PATH = Path(__file__).with_name("schema.graphql")

MAX_DEPTH = 10
MAX_TOKENS = 2000
MAX_ALIASES = 15


def validation_rules(*, production: bool) -> list[type[ASTValidationRule]]:
    """The limits as validation rules (built once: each limiter makes a new rule class).

    The same rules, in the same order, as the limiter extensions and
    ``DisableIntrospection`` add to each request themselves.
    """
    rules = [
        *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
        *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
    ]
    if production:
        rules.append(NoSchemaIntrospectionCustomRule)
    return rules


def build_schema(*, production: bool = False) -> strawberry.Schema:
    """The API schema; production turns introspection off."""
    rules = validation_rules(production=production)
    documents = DocumentCache()  # one per schema: a document's validity depends on its rules
    # Factories, not instances: Strawberry builds fresh extensions for each request.
    extensions: list[Any] = [
        lambda: AddValidationRules(rules),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        # Before the document cache: variables are checked on every request.
        lambda: RefuseNulCharacters(known=documents),
        lambda: CachedDocuments(documents),
        MaskUnexpectedErrors,
    ]
    return ApiSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
        execution_context_class=executor_class(),
    )


def export_sdl() -> str:
    """The schema as SDL, as checked in at ``schema/schema.graphql``."""
    return build_schema().as_str() + "\n"
