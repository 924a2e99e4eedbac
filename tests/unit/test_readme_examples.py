"""The README's GraphQL examples are valid against the schema and fit `webhooks dev`.

A newcomer copies them first: a snippet without a selection set, or a field the schema
does not have, fails on the first try.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from graphql import GraphQLError, parse, validate

from app.run.development import DEMO_COMPANY_ID, EXAMPLE_RECEIVER_PORT
from schema.root import build_schema

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
BLOCKS = re.findall(r"```graphql\n(.*?)```", README, re.DOTALL)
# Inline code spans that are whole operations (`mutation { ... }`).
INLINE = re.findall(r"`((?:mutation|subscription|query) \{[^`]*)`", README)
# A GraphQL block may hold several operations separated by blank lines.
OPERATIONS = [
    operation.strip()
    for block in BLOCKS
    for operation in re.split(r"\n(?=(?:mutation|subscription|query|\{))", block)
    if operation.strip()
] + INLINE


def test_the_readme_has_examples_to_check() -> None:
    assert len(OPERATIONS) >= 8
    assert any("updateWebhookSubscription" in operation for operation in INLINE)


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda text: text.split("\n")[0][:60])
def test_each_readme_example_is_valid(operation: str) -> None:
    schema = build_schema()._schema
    # The README shortens ids to "..."; any string is a valid ID.
    errors: list[GraphQLError] = validate(schema, parse(operation))
    assert errors == [], operation


def test_examples_name_the_demo_company_and_the_example_receiver() -> None:
    companies = set(re.findall(r'companyId: "([^"]+)"', README))
    assert companies == {DEMO_COMPANY_ID}
    assert f"http://127.0.0.1:{EXAMPLE_RECEIVER_PORT}/planomatic" in README
