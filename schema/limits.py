"""Depth, aliases and cost of each operation, judged in time linear in the document.

A fragment may be spread many times, and fragments spread one another: ``F1`` spreading
``F0`` twice, ``F2`` spreading ``F1`` twice, and so on, stands for 2^n copies of ``F0`` in
under a kilobyte. Expanding the spreads, as Strawberry's ``QueryDepthLimiter`` and
``MaxAliasesLimiter`` do, is exponential work before any key is looked at. Here each
fragment is measured once, from the measures of the fragments it spreads (a walk of the
spread graph, dependencies first), and a spread adds its fragment's measure. The numbers
still count every copy, so such a document is judged on what it expands to, and refused.

The cost of an operation estimates the fields it resolves: each field counts once for
every object it may be resolved on, and each item of a list once more (an object to
build). A list multiplies what is below it by its length: its ``first`` (at most
``MAX_PAGE_SIZE``; the argument's default when absent; ``MAX_PAGE_SIZE`` when a variable
gives it, since variables are not known when a document is validated and kept). A list
without ``first`` is as long as the ``first`` of the connection it belongs to (a
connection's ``nodes`` and ``edges``), or else ``UNPAGED_LENGTH`` long (a delivery's
attempts, an event's deliveries: a guess, since nothing caps them). Every aliased field
is a field of its own, so aliases multiply the cost too, and so do copies of a fragment.
``@skip``/``@include`` are not evaluated: a field counts either way. Introspection fields
(``__schema``, ``__type``) count for nothing, as for depth: introspection is off in
production.

The checks are an ``ASTValidationRule``, so they run with graphql-core's own rules, on
every document that is not already kept (``schema.documents``): a kept document passed
them, and they do not depend on variables or on the caller. They run after the API key
was looked up (Strawberry builds the context first) and whether or not there is one:
bounded by the token limit and linear, judging a document costs about what the key
lookup costs, and a document's validity is the same for every caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
)
from graphql.validation import ASTValidationRule, ValidationContext

from app.core.pagination import MAX_PAGE_SIZE

DEPTH_CODE = "QUERY_TOO_DEEP"
ALIASES_CODE = "TOO_MANY_ALIASES"
COST_CODE = "QUERY_TOO_COSTLY"

# The length assumed of a list without ``first`` outside a connection: a delivery's
# attempts (up to 10 a cycle by default), an event's deliveries (one per subscription).
UNPAGED_LENGTH = 10

# Leaf fields that can be large count as many fields: an attempt's request body is the
# whole payload (up to WEBHOOKS_MAX_PAYLOAD_BYTES, 256 KiB by default), and without a
# weight a page of 100 deliveries with their attempts' bodies would answer 1,000 copies of
# it (256 MB). At 400 a document reaches the default cost limit at about 125 bodies:
# about the bound of a page of 100 deliveries with their event payloads.
HEAVY_FIELDS: dict[tuple[str, str], int] = {("AttemptRequest", "body"): 400}

# Counts stop growing here: a document of a few kilobytes can stand for more fields than
# a number of thousands of digits, and such a number is only ever compared with a limit.
CEILING = 10**18


@dataclass(frozen=True, slots=True)
class Measure:
    """What a selection set (or a fragment) adds, for one object of its type.

    ``per_item`` is the cost below lists that take their length from the connection the
    selection set belongs to (``nodes``, ``edges``): it is multiplied by that length.
    """

    depth: int = 0
    aliases: int = 0
    cost: int = 0
    per_item: int = 0

    def __add__(self, other: Measure) -> Measure:
        return Measure(
            depth=max(self.depth, other.depth),
            aliases=min(self.aliases + other.aliases, CEILING),
            cost=min(self.cost + other.cost, CEILING),
            per_item=min(self.per_item + other.per_item, CEILING),
        )

    def total(self, length: int = UNPAGED_LENGTH) -> int:
        """The cost, its lists without ``first`` ``length`` long."""
        return min(self.cost + self.per_item * length, CEILING)


NOTHING = Measure()


@dataclass(frozen=True, slots=True)
class OperationMeasure:
    name: str  # "anonymous" for an operation without one
    node: OperationDefinitionNode
    depth: int
    aliases: int
    cost: int


def measure_document(schema: GraphQLSchema, document: DocumentNode) -> list[OperationMeasure]:
    """Each operation's depth, aliases and cost, each fragment measured once.

    Unknown fields, types and fragments, and fragment cycles, measure as nothing: the
    specified rules report them. The walk terminates on any document, cycles included.
    """
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    measures: dict[str, Measure] = {}
    walker = _Walker(schema, fragments, measures)
    for name in _dependencies_first(fragments):
        fragment = fragments[name]
        parent = schema.get_type(fragment.type_condition.name.value)
        measures[name] = walker.selection_set(fragment.selection_set, parent)
    found = []
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        root = schema.get_root_type(definition.operation)
        measure = walker.selection_set(definition.selection_set, root)
        found.append(
            OperationMeasure(
                name=definition.name.value if definition.name else "anonymous",
                node=definition,
                depth=measure.depth,
                aliases=measure.aliases,
                cost=measure.total(),
            )
        )
    return found


def _spreads(selection_set: SelectionSetNode) -> list[str]:
    """The names of the fragments a definition spreads, at any depth (without recursion)."""
    names: list[str] = []
    stack = [selection_set]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                names.append(selection.name.value)
            elif selection.selection_set is not None:  # type: ignore[attr-defined]
                stack.append(selection.selection_set)  # type: ignore[attr-defined]
    return names


def _dependencies_first(fragments: dict[str, FragmentDefinitionNode]) -> list[str]:
    """Every fragment after those it spreads; a spread closing a cycle is ignored.

    An iterative depth-first walk: each fragment is entered once, so the work is linear,
    and a chain of fragments as long as the document allows cannot exhaust the stack.
    """
    spreads = {name: _spreads(fragment.selection_set) for name, fragment in fragments.items()}
    order: list[str] = []
    done: set[str] = set()
    for root in fragments:
        if root in done:
            continue
        path = [(root, iter(spreads[root]))]
        on_path = {root}
        while path:
            name, pending = path[-1]
            for spread in pending:
                if spread in spreads and spread not in done and spread not in on_path:
                    path.append((spread, iter(spreads[spread])))
                    on_path.add(spread)
                    break
            else:
                path.pop()
                on_path.discard(name)
                done.add(name)
                order.append(name)
    return order


class _Walker:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        measures: dict[str, Measure],
    ) -> None:
        self._schema = schema
        self._fragments = fragments
        self._measures = measures  # fragments measured so far (missing: not yet, or a cycle)

    def selection_set(self, selection_set: SelectionSetNode, parent: Any) -> Measure:
        measure = NOTHING
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                measure += self._field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self._schema.get_type(condition.name.value) if condition else parent
                measure += self.selection_set(selection.selection_set, inner)
            elif isinstance(selection, FragmentSpreadNode):
                measure += self._measures.get(selection.name.value, NOTHING)
        return measure

    def _field(self, node: FieldNode, parent: Any) -> Measure:
        name = node.name.value
        aliases = 1 if node.alias else 0
        if name.startswith("__"):
            # __typename is a field like any other; introspection counts for nothing.
            return Measure(aliases=aliases, cost=1 if name == "__typename" else 0)
        definition = None
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            definition = parent.fields.get(name)
        if definition is None or node.selection_set is None:
            weight = HEAVY_FIELDS.get((getattr(parent, "name", ""), name), 1)
            return Measure(aliases=aliases, cost=weight)
        field_type = definition.type
        if isinstance(field_type, GraphQLNonNull):
            field_type = field_type.of_type
        named: GraphQLNamedType = get_named_type(field_type)
        below = self.selection_set(node.selection_set, named)
        depth = below.depth + 1
        aliases += below.aliases
        first = _first(node, definition.args)
        if isinstance(field_type, GraphQLList):
            items = 1 + below.total()  # each item is an object to build, then its fields
            if first is None:  # as long as the connection it is in: the caller multiplies
                return Measure(depth=depth, aliases=aliases, cost=1, per_item=items)
            return Measure(depth=depth, aliases=aliases, cost=min(1 + first * items, CEILING))
        # One object; a connection (with ``first``) gives its lists their length.
        return Measure(
            depth=depth,
            aliases=aliases,
            cost=1 + below.total(UNPAGED_LENGTH if first is None else first),
        )


def _first(node: FieldNode, arguments: dict[str, Any]) -> int | None:
    """The page size a field asks for, as large as it may be; None without ``first``."""
    argument = arguments.get("first")
    if argument is None:
        return None
    for given in node.arguments or ():
        if given.name.value == "first":
            if isinstance(given.value, IntValueNode):
                return min(max(int(given.value.value), 0), MAX_PAGE_SIZE)
            return MAX_PAGE_SIZE  # a variable, or a value other rules refuse
    default = argument.default_value
    if isinstance(default, int) and not isinstance(default, bool):
        return min(max(default, 0), MAX_PAGE_SIZE)
    return MAX_PAGE_SIZE


def operation_limits(*, max_depth: int, max_aliases: int, max_cost: int) -> type[ASTValidationRule]:
    """A validation rule refusing operations over any of the limits."""

    class OperationLimits(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            for error in limit_errors(
                measure_document(context.schema, context.document),
                max_depth=max_depth,
                max_aliases=max_aliases,
                max_cost=max_cost,
            ):
                context.report_error(error)

    return OperationLimits


def limit_errors(
    measures: list[OperationMeasure], *, max_depth: int, max_aliases: int, max_cost: int
) -> list[GraphQLError]:
    """The errors for the operations over a limit; the messages state measure and limit.

    One error per operation, for the first limit it is over: depth, aliases, then cost.
    """
    errors = []
    for measure in measures:
        if measure.depth > max_depth:
            errors.append(
                GraphQLError(
                    f"'{measure.name}' exceeds maximum operation depth of {max_depth}",
                    measure.node,
                    extensions={"code": DEPTH_CODE, "depth": measure.depth, "limit": max_depth},
                )
            )
        elif measure.aliases > max_aliases:
            errors.append(
                GraphQLError(
                    f"{measure.aliases} aliases found. Allowed: {max_aliases}",
                    measure.node,
                    extensions={
                        "code": ALIASES_CODE,
                        "aliases": measure.aliases,
                        "limit": max_aliases,
                    },
                )
            )
        elif measure.cost > max_cost:
            errors.append(
                GraphQLError(
                    f"'{measure.name}' may resolve up to {measure.cost} fields, "
                    f"over the limit of {max_cost}: ask for smaller pages (`first`), "
                    "fewer nested lists or fewer aliases.",
                    measure.node,
                    extensions={"code": COST_CODE, "cost": measure.cost, "limit": max_cost},
                )
            )
    return errors
