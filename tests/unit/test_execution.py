"""The plain-leaf executor gives exactly what graphql-core's own execution gives.

Every case runs twice, once with Strawberry's executor and once with ours, and the
results (data, error messages, paths, locations) must be equal: values the scalars
refuse, nulls in non-null fields, enums, resolvers, permissions and middleware.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
import strawberry
from graphql import GraphQLObjectType
from strawberry.extensions import SchemaExtension
from strawberry.permission import BasePermission
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.core.settings import Settings
from app.web.server import ServicesHolder, WebhooksGraphQL
from schema import execution
from schema.execution import FreshContextExecutor, PlainLeafExecutor, plain_leaves
from schema.root import build_schema

MOMENT = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


@strawberry.enum
class Colour(Enum):
    RED = "RED"
    BLUE = "BLUE"


@strawberry.enum
class Shade(Enum):
    RED = "RED"


class Label(str):
    pass


class Never(BasePermission):
    message = "not allowed"

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return False


@strawberry.type
class Item:
    id: strawberry.ID
    name: str
    count: int
    ratio: float
    on: bool
    colour: Colour
    at: datetime
    note: str | None
    secret: str = strawberry.field(permission_classes=[Never], default="hidden")

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()

    @strawberry.field
    def twice(self, times: int = 2) -> int:
        return self.count * times


def _item(**changes: Any) -> Item:
    values: dict[str, Any] = {
        "id": strawberry.ID("item-1"),
        "name": "first",
        "count": 3,
        "ratio": 0.5,
        "on": True,
        "colour": Colour.BLUE,
        "at": MOMENT,
        "note": None,
    }
    values.update(changes)
    return Item(**values)


BAD_ITEMS: dict[str, Item] = {
    "good": _item(),
    "null_in_non_null": _item(name=None),
    "not_an_int": _item(count="three"),
    "int_too_large": _item(count=2**40),
    "enum_value_unknown": _item(colour="GREEN"),
    "enum_as_its_value": _item(colour="RED"),
    "uuid_id": _item(id=uuid.UUID(int=7)),
    "object_id": _item(id=object()),
    "not_a_datetime": _item(at="yesterday"),
    "note_given": _item(note="a note"),
    "note_not_a_string": _item(note=["a"]),
    "bool_as_int": _item(count=True),
    "float_as_int": _item(count=3.0),
    "int_bounds": _item(count=2**31 - 1, ratio=-(2**31)),
    "int_just_too_large": _item(count=2**31),
    "int_as_string": _item(name=5),
    "bool_as_string": _item(name=False),
    "str_subclass": _item(name=Label("labelled"), id=Label("x")),
    "int_as_bool": _item(on=1),
    "other_enum": _item(colour=Shade.RED),
}


@strawberry.type
class Query:
    @strawberry.field
    def item(self, case: str) -> Item:
        return BAD_ITEMS[case]

    @strawberry.field
    def items(self) -> list[Item]:
        return [BAD_ITEMS["good"], BAD_ITEMS["null_in_non_null"], BAD_ITEMS["note_given"]]

    @strawberry.field
    def good_items(self) -> list[Item]:
        return [BAD_ITEMS["good"], BAD_ITEMS["note_given"], BAD_ITEMS["bool_as_int"]]

    @strawberry.field
    def sparse_items(self) -> list[Item | None]:
        return [BAD_ITEMS["good"], None, BAD_ITEMS["note_given"]]

    @strawberry.field
    def no_items(self) -> list[Item] | None:
        return []

    @strawberry.field
    def maybe(self) -> Item | None:
        return BAD_ITEMS["not_an_int"]


class Upper(SchemaExtension):
    """Resolve middleware: it must see every field, so the fast path steps aside."""

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        value = _next(root, info, *args, **kwargs)
        return value.upper() if isinstance(value, str) else value


ALL_FIELDS = "id name count ratio on colour at note shout twice(times: 3)"
DOCUMENTS = [
    *(f'{{ item(case: "{case}") {{ {ALL_FIELDS} }} }}' for case in BAD_ITEMS),
    f"{{ items {{ {ALL_FIELDS} }} }}",
    f"{{ maybe {{ {ALL_FIELDS} }} }}",
    '{ item(case: "good") { a: name b: name count __typename } }',
    '{ item(case: "null_in_non_null") { __typename t: __typename count name } }',
    "{ items { id name note } }",
    "{ goodItems { __typename id name note colour at count on } }",
    "{ goodItems { id shout } }",
    "{ goodItems @include(if: true) { id note } }",
    "{ sparseItems { id note } }",
    "{ noItems { id } }",
    "{ items { id ...on Item { note count } } }",
    '{ item(case: "good") { secret name } }',
    '{ item(case: "good") { ... on Item { name } ...F } } fragment F on Item { count }',
]


def _schema(executor: bool, extensions: list[Any] | None = None) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        extensions=extensions or [],
        execution_context_class=PlainLeafExecutor if executor else None,
    )


def _outcome(result: Any) -> tuple[Any, list[tuple[str, Any, Any]]]:
    errors = [
        (error.message, error.path, [(loc.line, loc.column) for loc in error.locations or []])
        for error in result.errors or []
    ]
    return result.data, errors


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_results_and_errors_equal_graphql_cores(document: str) -> None:
    # Given the same schema executed both ways
    expected = await _schema(executor=False).execute(document)
    # When our executor runs the document
    got = await _schema(executor=True).execute(document)
    # Then data and errors are identical
    assert _outcome(got) == _outcome(expected)


@pytest.mark.parametrize("document", DOCUMENTS[:3])
async def test_resolve_middleware_still_sees_every_field(document: str) -> None:
    expected = await _schema(executor=False, extensions=[Upper]).execute(document)
    got = await _schema(executor=True, extensions=[Upper]).execute(document)
    assert _outcome(got) == _outcome(expected)
    if not got.errors:
        assert got.data is not None
        assert got.data["item"]["name"] == "FIRST"


async def test_plain_fields_skip_graphql_cores_field_execution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a spy on graphql-core's per-field execution
    executed: list[str] = []
    original = StrawberryGraphQLCoreExecutionContext.execute_field

    def spy(self: Any, parent_type: Any, source: Any, fields: Any, *rest: Any) -> Any:
        executed.append(fields[0].node.name.value)
        return original(self, parent_type, source, fields, *rest)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_field", spy)
    # When plain fields, a resolver and a null in a non-null field are asked for
    result = await _schema(executor=True).execute(
        '{ item(case: "good") { name count note shout } '
        'other: item(case: "null_in_non_null") { name } }'
    )
    # Then only the resolvers and the failing field took graphql-core's way
    assert executed == ["item", "shout", "item", "name"]
    assert result.errors is not None
    assert result.errors[0].path == ["other", "name"]

    # And a list of objects with nothing but plain fields is built without it at all
    executed.clear()
    result = await _schema(executor=True).execute("{ goodItems { __typename id note } }")
    assert executed == ["goodItems"]
    assert result.errors is None
    assert result.data is not None
    assert result.data["goodItems"][1] == {"__typename": "Item", "id": "item-1", "note": "a note"}


def test_only_attribute_fields_of_leaf_types_are_plain() -> None:
    leaves = plain_leaves(_schema(executor=True)._schema)
    assert set(leaves) == {"Item"}
    assert set(leaves["Item"]) == {"id", "name", "count", "ratio", "on", "colour", "at", "note"}
    assert leaves["Item"]["note"].non_null is False
    assert leaves["Item"]["name"].non_null is True


def _fields_of(type_name: str) -> Iterator[str]:
    schema = build_schema()._schema
    type_ = schema.type_map[type_name]
    assert isinstance(type_, GraphQLObjectType)
    yield from type_.fields


def test_the_api_schema_uses_it_and_its_resolvers_stay_resolvers() -> None:
    schema = build_schema()
    assert schema.execution_context_class is PlainLeafExecutor
    leaves = plain_leaves(schema._schema)
    # Fields computed by resolvers are never read as attributes.
    assert "attempts" not in leaves["Delivery"]
    assert "event" not in leaves["Delivery"]
    assert "webhook" not in leaves["WebhookSubscription"]
    assert {"status", "createdAt", "attemptCount"} <= set(leaves["Delivery"])
    assert {"startedAt", "durationMs", "url"} <= set(leaves["DeliveryAttempt"])
    assert "Query" not in leaves and "Mutation" not in leaves
    assert set(_fields_of("Delivery")) >= set(leaves["Delivery"])


def test_fast_execution_off_runs_graphql_cores_executor_with_fresh_contexts() -> None:
    # WEBHOOKS_FAST_EXECUTION=off: no plain-leaf path, but still a context per operation.
    schema = build_schema(fast_execution=False)
    assert schema.execution_context_class is FreshContextExecutor
    for fast, executor in ((False, FreshContextExecutor), (True, PlainLeafExecutor)):
        served = WebhooksGraphQL(ServicesHolder(), Settings(fast_execution=fast)).schema
        assert served.execution_context_class is executor
    assert not issubclass(FreshContextExecutor, PlainLeafExecutor)
    assert "execute_field" not in vars(FreshContextExecutor)


def test_another_graphql_core_executor_refuses_to_load(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a graphql-core whose execute_field takes other parameters than 3.3's
    def execute_field(self: Any, parent_type: Any, source: Any, fields: Any, path: Any) -> Any:
        raise AssertionError("never called")

    with monkeypatch.context() as patch:
        patch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_field", execute_field)
        # When the module checks what it overrides, it stops (at import) naming the method
        with pytest.raises(ImportError, match=r"Executor\.execute_field.*pyproject\.toml pins"):
            execution._check_graphql_core()

    # And a method gone altogether stops it too
    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "complete_list_value", None)
    with pytest.raises(ImportError, match=r"complete_list_value.* has None"):
        execution._check_graphql_core()
    # While the graphql-core installed passes
    monkeypatch.undo()
    execution._check_graphql_core()
