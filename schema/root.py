"""The assembled Strawberry schema and its protective extensions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import strawberry
from graphql import ASTValidationRule
from graphql.validation import NoSchemaIntrospectionCustomRule
from graphql.validation.rules import overlapping_fields_can_be_merged
from strawberry.extensions import AddValidationRules, MaxTokensLimiter
from strawberry.schema.config import StrawberryConfig

from app.core.settings import Settings
from schema.api_schema import ApiSchema
from schema.documents import CachedDocuments, DocumentCache
from schema.execution import executor_class
from schema.limits import operation_limits
from schema.masking import MaskUnexpectedErrors
from schema.mutation import Mutation
from schema.nul_characters import RefuseNulCharacters
from schema.portal import ReadOnlySessions
from schema.query import Query
from schema.subscription import Subscription
from schema.validation import ValidateDocument

SDL_PATH = Path(__file__).with_name("schema.graphql")

MAX_DEPTH = 10
MAX_TOKENS = 2000
MAX_ALIASES = 15
MAX_COST = Settings.max_query_cost  # WEBHOOKS_MAX_QUERY_COST
# graphql-core's OverlappingFieldsCanBeMerged compares fields of the same response name
# pairwise: quadratic in them (`{ viewer { role } viewer { role } ... }`), metered by a
# budget whose default (500,000 units) still lets one document hold the event loop for
# seconds. The documents of the README, the bench and the tests spend next to nothing;
# a hundred copies of one field with a selection about 25,000. Read per validation.
OVERLAP_BUDGET = 30_000
overlapping_fields_can_be_merged.MAX_COMPLEXITY_BUDGET = OVERLAP_BUDGET


def validation_rules(
    *, production: bool, max_cost: int = MAX_COST
) -> list[type[ASTValidationRule]]:
    """The limits as validation rules, built once per schema.

    Depth, aliases and cost are measured in one walk, linear in the document (see
    ``schema.limits``); Strawberry's limiters expand fragment spreads instead.
    """
    rules: list[type[ASTValidationRule]] = [
        operation_limits(max_depth=MAX_DEPTH, max_aliases=MAX_ALIASES, max_cost=max_cost)
    ]
    if production:
        rules.append(NoSchemaIntrospectionCustomRule)
    return rules


def build_schema(
    *, production: bool = False, max_cost: int = MAX_COST, fast_execution: bool = True
) -> strawberry.Schema:
    """The API schema; production turns introspection and suggestions off, and
    ``fast_execution`` (WEBHOOKS_FAST_EXECUTION) picks ``schema.execution``'s executor."""
    rules = validation_rules(production=production, max_cost=max_cost)
    documents = DocumentCache()  # one per schema: a document's validity depends on its rules
    # Factories, not instances: Strawberry builds fresh extensions for each request.
    extensions: list[Any] = [
        lambda: AddValidationRules(rules),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        # Before the document cache: variables are checked on every request.
        lambda: RefuseNulCharacters(known=documents),
        lambda: CachedDocuments(documents),
        # After the cache: it validates what the cache does not hold.
        lambda: ValidateDocument(hide_suggestions=production),
        MaskUnexpectedErrors,
        ReadOnlySessions,
    ]
    return ApiSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
        execution_context_class=executor_class(fast=fast_execution),
        hide_suggestions=production,
    )


def export_sdl() -> str:
    """The schema as SDL, as checked in at ``schema/schema.graphql``."""
    return build_schema().as_str() + "\n"
