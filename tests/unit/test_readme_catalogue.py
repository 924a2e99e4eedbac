"""The README's publishEvent examples publish payloads the catalogue accepts, and its
status table is the schema's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from graphql import parse
from graphql.language import ast
from graphql.utilities import value_from_ast_untyped

from app.core.payload_schema import compile_schema, status_values
from tests.catalogue import ORDER_STATUS_DESCRIPTION, ORDER_STATUS_NAME, order_status_schema

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
BLOCKS = re.findall(r"```graphql\n(.*?)```", README, re.DOTALL)


def published_payloads() -> list[dict[str, Any]]:
    """The ``payload`` argument of every publishEvent in the README's GraphQL blocks."""
    found = []
    for block in BLOCKS:
        for operation in re.split(r"\n(?=(?:mutation|subscription|query|\{))", block):
            if "publishEvent" not in operation:
                continue
            for node in _object_fields(parse(operation)):
                if node.name.value == "payload":
                    found.append(value_from_ast_untyped(node.value))
    return found


def _object_fields(document: ast.DocumentNode) -> list[ast.ObjectFieldNode]:
    fields: list[ast.ObjectFieldNode] = []
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.ObjectFieldNode):
            fields.append(node)
        if isinstance(node, ast.Node):
            stack.extend(getattr(node, key) for key in node.keys)
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return fields


def test_the_readme_publishes_at_least_one_event() -> None:
    assert published_payloads()


@pytest.mark.parametrize("payload", published_payloads())
def test_each_published_payload_matches_the_order_status_schema(payload: dict[str, Any]) -> None:
    report = compile_schema(order_status_schema()).check(payload, 0, 20)

    assert report.violations == ()


def test_the_status_table_lists_the_schemas_values_and_meanings() -> None:
    table_text = README.split("| `order_status` | Meaning |\n", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| (.+?) \|$", table_text, re.MULTILINE)
    table = {value: meaning.replace("`", "") for value, meaning in rows}
    statuses = status_values(order_status_schema(), ("order_status",))

    assert statuses is not None
    assert {status.value: status.description for status in statuses} == {
        status.value: table[status.value] for status in statuses
    }


def test_the_readmes_put_command_repeats_what_the_migration_wrote() -> None:
    # So that running it on a migrated database changes nothing, as the README says
    # (tests/acceptance/test_catalogue_cli.py puts these values).
    assert f'--name "{ORDER_STATUS_NAME}"' in README
    assert f'--description "{ORDER_STATUS_DESCRIPTION}"' in README
