"""Validation as the API runs it: no suggestions in production, operationName when needed."""

from __future__ import annotations

import pytest

from schema.root import build_schema
from schema.validation import OPERATION_NAME_REQUIRED
from tests.payloads import order_status_payload

TWO_OPERATIONS = "query A { a: __typename } query B { b: __typename }"
MISSPELT_FIELD = "{ viewr { role } }"
MISSPELT_ENUM = "{ deliveries(filter: {status: FAILD}) { nodes { id } } }"
ENUM_VARIABLE = """
query Failed($status: DeliveryStatus) { deliveries(filter: {status: $status}) { nodes { id } } }
"""
INPUT_VARIABLE = (
    "mutation Publish($input: PublishEventInput!) { publishEvent(input: $input) { event { id } } }"
)
MISSPELT_INPUT = {
    "input": {"companyId": "acme", "webhok": "ORDER_STATUS", "payload": order_status_payload()}
}


async def test_several_operations_without_operation_name_are_refused() -> None:
    result = await build_schema().execute(TWO_OPERATIONS)

    assert result.data is None
    assert result.errors is not None
    assert [error.message for error in result.errors] == [OPERATION_NAME_REQUIRED]


async def test_operation_name_picks_one_of_several() -> None:
    schema = build_schema()

    first = await schema.execute(TWO_OPERATIONS, operation_name="A")
    second = await schema.execute(TWO_OPERATIONS, operation_name="B")

    assert (first.errors, first.data) == (None, {"a": "Query"})
    assert (second.errors, second.data) == (None, {"b": "Query"})


async def test_a_kept_document_still_needs_its_operation_name() -> None:
    # Given a document validated and kept by the cache, once run with a name
    schema = build_schema()
    assert (await schema.execute(TWO_OPERATIONS, operation_name="B")).errors is None
    # When it comes again without one
    again = await schema.execute(TWO_OPERATIONS)
    # Then it is refused as the first time would have been
    assert again.errors is not None
    assert [error.message for error in again.errors] == [OPERATION_NAME_REQUIRED]


@pytest.mark.parametrize("document", [MISSPELT_FIELD, MISSPELT_ENUM])
async def test_production_validation_errors_suggest_nothing(document: str) -> None:
    development = await build_schema().execute(document)
    production = await build_schema(production=True).execute(document)

    assert development.errors is not None
    assert "Did you mean" in development.errors[0].message  # what production must not say
    assert production.errors is not None
    assert production.errors[0].message == development.errors[0].message.split(" Did you mean")[0]


@pytest.mark.parametrize(
    ("document", "variables"),
    [(ENUM_VARIABLE, {"status": "FAILD"}), (INPUT_VARIABLE, MISSPELT_INPUT)],
)
async def test_production_variable_errors_suggest_nothing(
    document: str, variables: dict[str, object]
) -> None:
    development = await build_schema().execute(document, variable_values=variables)
    production = await build_schema(production=True).execute(document, variable_values=variables)

    assert development.errors is not None
    assert any("Did you mean" in error.message for error in development.errors)
    assert production.errors
    assert all("Did you mean" not in error.message for error in production.errors)
