"""A graphql-core executor that reads plain leaf fields without the per-field machinery.

Most of what a page of deliveries costs is graphql-core resolving thousands of scalar
fields (``status``, ``startedAt``, ``durationMs``...) one at a time: a resolve-info
object, a resolver call into Strawberry, awaitable checks and a recursive value
completion for each. For a field that Strawberry resolves by reading an attribute (no
resolver method, no field extensions or permissions, no arguments) and whose type is a
scalar or enum, that comes down to ``getattr`` and the type's output coercion; this
executor does exactly that.

Anything out of the ordinary (a null in a non-null field, a value the scalar refuses, a
missing attribute, any resolve middleware) goes through graphql-core's own
``execute_field``, so errors and their paths are the ones it would give.

It also gives every operation, and every update of a subscription, a fresh copy of the
context (``fresh()``), so that DataLoader caches live no longer than what they serve: a
websocket's transport keeps one context for the connection's whole life.

It overrides methods graphql-core marks private (``:meta private:``), as of graphql-core
3.3: pyproject.toml pins that range, and importing this module fails (``ImportError``
naming the method) when one of them is missing or takes other parameters, so that a
different graphql-core stops start-up instead of quietly running another executor.
``WEBHOOKS_FAST_EXECUTION=off`` runs Strawberry's stock executor instead (with the fresh
contexts, which are no optimisation).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, cast
from weakref import WeakKeyDictionary

from graphql import (
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLSchema,
    is_leaf_type,
    specified_scalar_types,
)
from graphql import version as graphql_version
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import CustomGraphQLEnumType, GraphQLCoreConverter
from strawberry.types.field import StrawberryField


@dataclass(frozen=True, slots=True)
class PlainLeaf:
    """A scalar or enum field read straight from an attribute of its object."""

    attribute: str
    graphql_type: GraphQLLeafType
    non_null: bool
    # A value of exactly this Python type is its own output (str for String and ID, bool
    # for Boolean, int within 32 bits for Int), as graphql-core's coercion would give.
    same: type | None = None
    # For a Strawberry enum: its members' GraphQL names, as its coercion would find them.
    enum: type | None = None
    names: Mapping[Any, str] | None = None


PlainLeaves = dict[str, dict[str, PlainLeaf]]  # type name -> field name -> how to read it

_plans: WeakKeyDictionary[GraphQLSchema, PlainLeaves] = WeakKeyDictionary()


def plain_leaves(schema: GraphQLSchema) -> PlainLeaves:
    """The plain leaf fields of every object type of a Strawberry-built schema."""
    found: PlainLeaves = {}
    for type_ in schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__"):
            continue
        fields: dict[str, PlainLeaf] = {}
        for name, field in type_.fields.items():
            leaf = _plain_leaf(field.type, field.args, field.extensions)
            if leaf is not None:
                fields[name] = leaf
        if fields:
            found[type_.name] = fields
    return found


def _plain_leaf(type_: Any, args: dict[str, Any], extensions: dict[str, Any]) -> PlainLeaf | None:
    definition = extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(definition, StrawberryField) or not definition.is_basic_field or args:
        return None
    if definition.default_resolver is not getattr:
        return None
    non_null = isinstance(type_, GraphQLNonNull)
    inner = type_.of_type if non_null else type_
    if not is_leaf_type(inner):
        return None
    attribute = definition.python_name
    if isinstance(inner, CustomGraphQLEnumType):
        return PlainLeaf(
            attribute, inner, non_null, enum=inner.wrapped_cls, names=_enum_names(inner)
        )
    if specified_scalar_types.get(inner.name) is inner:  # the built-in itself, not a stand-in
        return PlainLeaf(attribute, inner, non_null, same=_SAME.get(inner.name))
    return PlainLeaf(attribute, inner, non_null)


# Built-in scalars whose output is the value itself for a value of exactly this type.
_SAME: dict[str, type] = {"String": str, "ID": str, "Boolean": bool, "Int": int}


def _enum_names(enum: CustomGraphQLEnumType) -> dict[Any, str]:
    """Each member's name, found the way Strawberry's enum coercion finds it."""
    names: dict[Any, str] = {}
    member: Enum
    for member in enum.wrapped_cls:
        for name, value in enum.values.items():
            if member.value == value.value:
                names[member] = name
                break
    return names


def _plan(schema: GraphQLSchema) -> PlainLeaves:
    plan = _plans.get(schema)
    if plan is None:
        plan = _plans[schema] = plain_leaves(schema)
    return plan


def _fresh(context: Any) -> Any:
    """``context.fresh()`` (a copy sharing nothing cached) when the context has one."""
    fresh = getattr(context, "fresh", None)
    return context if fresh is None else fresh()


_SLOW = object()


def _read(leaf: PlainLeaf, source: Any) -> Any:
    """The field's output value, or _SLOW when graphql-core must handle it (and any error)."""
    try:
        value = getattr(source, leaf.attribute)
        if value is None:
            return _SLOW if leaf.non_null else None
        kind = type(value)
        if kind is leaf.same and (kind is not int or _INT_MIN <= value <= _INT_MAX):
            return value
        if kind is leaf.enum and leaf.names is not None:
            return leaf.names[value]
        coerced = leaf.graphql_type.coerce_output_value(value)
    except Exception:  # graphql-core reports it, with its path
        return _SLOW
    if coerced is None or coerced is Undefined:
        return _SLOW
    return coerced


_INT_MIN = -(2**31)
_INT_MAX = 2**31 - 1


class FreshContextExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, with a context of its own for every operation and update."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A websocket keeps one context for all its operations: each gets its own copy.
        self.context_value = _fresh(self.context_value)

    def build_per_event_executor(self, payload: Any) -> FreshContextExecutor:
        """The executor of one subscription update, with a context (and loaders) of its
        own: what an update shows is loaded for it, never left over from an earlier one."""
        executor = cast(FreshContextExecutor, super().build_per_event_executor(payload))
        executor.context_value = _fresh(self.context_value)
        return executor


class PlainLeafExecutor(FreshContextExecutor):
    """The fresh-context executor, with plain leaf fields read directly.

    An object whose selected fields are all plain leaves (an attempt of a delivery, say)
    is built in one loop; otherwise each plain leaf is still read directly and the other
    fields go the usual way.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Resolve middleware (an extension with a ``resolve`` hook) must see every field.
        manager = self.middleware_manager
        wrapped = manager is not None and bool(manager.middlewares)
        self._leaves: PlainLeaves = {} if wrapped else _plan(self.schema)
        # Per selection: its plain leaves by response name, or None when it has others.
        # graphql-core reuses one grouped field set for every object of a list; the set
        # is kept alive with its entry so that its id cannot be reused meanwhile.
        self._selections: dict[tuple[str, int], tuple[GroupedFieldSet, _Selection | None]] = {}

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        selection = self._plain_selection(parent_type, grouped_field_set)
        if selection is not None:
            values = _build(selection, parent_type.name, source_value)
            if values is not _SLOW:
                return values
            # Otherwise graphql-core does the whole object again, errors included.
        return super().execute_fields(
            parent_type, source_value, path, grouped_field_set, position_context
        )

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        built = self._plain_objects(return_type.of_type, field_details_list, result)
        if built is not None:
            return built
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        fields = self._leaves.get(parent_type.name)
        if fields is not None:
            leaf = fields.get(field_details_list[0].node.name.value)
            if leaf is not None:
                value = _read(leaf, source)
                if value is not _SLOW:
                    return value
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def _plain_selection(
        self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
    ) -> _Selection | None:
        key = (parent_type.name, id(grouped_field_set))
        known = self._selections.get(key)
        if known is None:
            known = (grouped_field_set, _selection(self._leaves, parent_type, grouped_field_set))
            self._selections[key] = known
        return known[1]

    def _plain_objects(
        self, item_type: GraphQLOutputType, field_details_list: FieldDetailsList, items: Any
    ) -> list[dict[str, Any]] | None:
        """A list of objects with nothing but plain leaves selected, built in one loop.

        None when it is anything else (other fields, directives on the list field such
        as ``@stream``, a null or odd item), and graphql-core completes the list itself.
        """
        if not isinstance(items, list) or field_details_list[0].node.directives:
            return None
        if isinstance(item_type, GraphQLNonNull):
            item_type = item_type.of_type
        if not isinstance(item_type, GraphQLObjectType) or item_type.is_type_of is not None:
            return None
        grouped_field_set, new_defer_usages, forbidden = self.collect_subfields(
            item_type, field_details_list
        )
        if new_defer_usages or forbidden:
            return None
        selection = self._plain_selection(item_type, grouped_field_set)
        if selection is None:
            return None
        built = []
        for item in items:
            values = _build(selection, item_type.name, item)
            if values is _SLOW:
                return None
            built.append(values)
        return built


# (response name, leaf); None stands for ``__typename``.
_Selection = list[tuple[str, PlainLeaf | None]]


def _build(selection: _Selection, type_name: str, source: Any) -> Any:
    """The object's selected values, or _SLOW when any of them needs graphql-core."""
    if source is None:
        return _SLOW
    values: dict[str, Any] = {}
    for response_name, leaf in selection:
        value = type_name if leaf is None else _read(leaf, source)
        if value is _SLOW:
            return _SLOW
        values[response_name] = value
    return values


def _selection(
    leaves: PlainLeaves, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
) -> _Selection | None:
    """The selection as plain leaves, or None when any field needs graphql-core."""
    fields = leaves.get(parent_type.name)
    if fields is None:
        return None
    selection: _Selection = []
    for response_name, field_details_list in grouped_field_set.items():
        name = field_details_list[0].node.name.value
        if name == "__typename":
            selection.append((response_name, None))
            continue
        leaf = fields.get(name)
        if leaf is None:
            return None
        selection.append((response_name, leaf))
    return selection


def executor_class(*, fast: bool = True) -> type[FreshContextExecutor]:
    """The executor for the API schema: with plain leaves read directly, or (``fast``
    off) graphql-core's field by field."""
    return PlainLeafExecutor if fast else FreshContextExecutor


# What PlainLeafExecutor overrides or calls of graphql-core's executor, with the
# parameters it passes (as graphql-core 3.3 names them).
_RELIED_ON: dict[str, tuple[str, ...]] = {
    "execute_fields": (
        "self",
        "parent_type",
        "source_value",
        "path",
        "grouped_field_set",
        "position_context",
    ),
    "execute_field": (
        "self",
        "parent_type",
        "source",
        "field_details_list",
        "path",
        "position_context",
    ),
    "complete_list_value": (
        "self",
        "return_type",
        "field_details_list",
        "info",
        "path",
        "result",
        "position_context",
    ),
    "collect_subfields": ("self", "return_type", "field_details_list"),
    "build_per_event_executor": ("self", "payload"),
}


def _check_graphql_core() -> None:
    """Refuse to load with a graphql-core whose executor is not the one this overrides."""
    for name, parameters in _RELIED_ON.items():
        method = getattr(StrawberryGraphQLCoreExecutionContext, name, None)
        found = tuple(inspect.signature(method).parameters) if callable(method) else None
        if found != parameters:
            raise ImportError(
                f"schema.execution overrides graphql-core 3.3's Executor.{name}{parameters}, "
                f"but graphql-core {graphql_version} has {found}: install the version "
                "pyproject.toml pins"
            )


_check_graphql_core()
