"""A schema's weight once its references are followed: each reference counts as what it
names, the way the validator resolves it, in time linear in the schema."""

from __future__ import annotations

import time
from typing import Any

from app.core.schema_expansion import expansion
from tests.catalogue import order_status_schema


def doubling(levels: int) -> dict[str, Any]:
    """A kilobyte-sized schema whose every definition names the next one twice."""
    definitions: dict[str, Any] = {
        f"d{level}": {"allOf": [{"$ref": f"#/$defs/d{level + 1}"}] * 2} for level in range(levels)
    }
    definitions[f"d{levels}"] = {"type": "string"}
    return {"type": "object", "$defs": definitions, "properties": {"n": {"$ref": "#/$defs/d0"}}}


def test_order_status_weighs_what_it_says() -> None:
    weight = expansion(order_status_schema(), 100_000)

    assert 50 < weight.subschemas < 200
    assert not weight.recursive
    assert weight.unresolved == ()


def test_a_definition_counts_where_it_is_named_not_where_it_is_defined() -> None:
    once = {"type": "object", "$defs": {"s": {"type": "string"}}, "properties": {"a": {}}}
    twice = {
        "type": "object",
        "$defs": {"s": {"type": "string"}},
        "properties": {"a": {"$ref": "#/$defs/s"}, "b": {"$ref": "#/$defs/s"}},
    }

    # root, properties, a  /  root, properties, a -> s, b -> s
    assert expansion(once, 100).subschemas == 3
    assert expansion(twice, 100).subschemas == 6


def test_doubling_references_are_counted_without_being_walked() -> None:
    started = time.monotonic()

    weight = expansion(doubling(60), 100_000)

    assert weight.subschemas == 100_001  # capped
    assert time.monotonic() - started < 0.5


def test_a_long_chain_of_references_is_counted_once_per_link() -> None:
    definitions: dict[str, Any] = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(5000)}
    definitions["d5000"] = {"type": "string"}
    schema = {"type": "object", "$defs": definitions, "properties": {"n": {"$ref": "#/$defs/d0"}}}

    assert expansion(schema, 100_000).subschemas == 5001 + 3


def test_anchors_percent_encoding_and_embedded_resources_resolve_as_the_validator_does() -> None:
    heavy = {"allOf": [{"type": "string"}] * 10}
    schema = {
        "type": "object",
        "$defs": {
            "by anchor": {"$anchor": "heavy", **heavy},
            # Inside a resource of its own, "#/$defs/x" is that resource's x.
            "inner": {"$id": "inner.json", "$defs": {"x": heavy}, "$ref": "#/$defs/x"},
        },
        "properties": {
            "a": {"$ref": "#heavy"},
            "b": {"$ref": "#/$defs/by%20anchor"},
            "c": {"$ref": "#/$defs/inner"},
        },
    }

    weight = expansion(schema, 1000)

    assert weight.unresolved == ()
    assert weight.subschemas == 2 + 3 * (1 + 12) + 1  # c's resource adds its own node


def test_a_reference_back_into_itself_is_recursive() -> None:
    tree = {"type": "object", "properties": {"children": {"items": {"$ref": "#"}}}}

    weight = expansion(tree, 1000)

    assert weight.recursive
    assert weight.subschemas == 5


def test_a_reference_that_names_nothing_is_reported() -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/none"}}}

    assert expansion(schema, 100).unresolved == ("#/$defs/none",)
