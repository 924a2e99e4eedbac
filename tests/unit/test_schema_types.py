"""GraphQL types that are resolved from domain values directly."""

from __future__ import annotations

import dataclasses

from strawberry.types.base import get_object_definition

from app.domain import deliveries
from schema.types import DeliveryAttempt


def test_every_delivery_attempt_field_is_an_attribute_of_the_domain_attempt() -> None:
    # Delivery.attempts returns app.domain.deliveries.Attempt values for DeliveryAttempt.
    definition = get_object_definition(DeliveryAttempt, strict=True)
    attributes = {field.name for field in dataclasses.fields(deliveries.Attempt)}
    for field in definition.fields:
        assert field.base_resolver is None, field.python_name
        assert field.python_name in attributes, field.python_name
