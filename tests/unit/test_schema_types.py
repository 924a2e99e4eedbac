"""GraphQL types that are resolved from domain values directly."""

from __future__ import annotations

import dataclasses

from strawberry.types.base import get_object_definition
from strawberry.types.enum import StrawberryEnumDefinition
from strawberry.types.private import is_private

from app.core.delivery_status import DeliveryStatus
from app.core.errors import UserErrorCode
from app.domain import deliveries
from schema.root import build_schema
from schema.types import DeliveryAttempt

# Resolved from the attempt's own attributes (the private fields), loaded when asked for.
RESOLVED_ATTEMPT_FIELDS = {"request"}


def test_every_delivery_attempt_field_is_an_attribute_of_the_domain_attempt() -> None:
    # Delivery.attempts returns app.domain.deliveries.Attempt values for DeliveryAttempt.
    definition = get_object_definition(DeliveryAttempt, strict=True)
    attributes = {field.name for field in dataclasses.fields(deliveries.Attempt)}
    for field in definition.fields:
        if field.python_name in RESOLVED_ATTEMPT_FIELDS:
            assert field.base_resolver is not None, field.python_name
            continue
        assert field.base_resolver is None, field.python_name
        assert field.python_name in attributes, field.python_name
    # and what the resolved ones read (strawberry.Private) is the domain attempt's too
    private = {
        field.python_name
        for field in definition.fields
        if field.type_annotation is not None and is_private(field.type_annotation.annotation)
    }
    assert private == {"delivery_id"}


def test_the_graphql_enums_are_the_domains_own_classes() -> None:
    # Given the schema as the API serves it
    schema = build_schema()

    # Then DeliveryStatus and UserErrorCode are the domain's enums, not copies of them
    for enum in (DeliveryStatus, UserErrorCode):
        definition = schema.get_type_by_name(enum.__name__)
        assert isinstance(definition, StrawberryEnumDefinition), enum
        assert definition.wrapped_cls is enum
