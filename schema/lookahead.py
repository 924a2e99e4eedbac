"""What the client selected below the current field, to load it together with the field.

A page of deliveries loads its deliveries' attempts with it when the document asks for
them, so that they need no await per delivery (see ``Delivery.attempts``).

The selection is read from graphql-core's nodes, each named fragment looked into once
per path: Strawberry's ``info.selected_fields`` expands every spread again, which is
exponential in a chain of fragments each spreading the previous one twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
)

from schema.context import Info

Path = tuple[str, ...]


def selects(info: Info, *paths: Sequence[str]) -> bool:
    """Whether the selection of the current field reaches any of ``paths`` (GraphQL names).

    Fragments, named or inline, count as if written in place; aliases do not matter.
    ``@include``/``@skip`` are not evaluated: a field they leave out still counts, so a
    caller may load something unused, never miss something used.
    """
    raw = info._raw_info
    search = _Search(raw.fragments)
    return any(
        node.selection_set is not None and search.reaches(node.selection_set, tuple(path))
        for node in raw.field_nodes
        for path in paths
    )


class _Search:
    def __init__(self, fragments: Mapping[str, FragmentDefinitionNode]) -> None:
        self._fragments = fragments
        # (fragment, path) -> whether it reaches the path; False while being looked into,
        # so that a cycle (refused by validation anyway) ends the search.
        self._known: dict[tuple[str, Path], bool] = {}

    def reaches(self, selection_set: SelectionSetNode, path: Path) -> bool:
        if not path:
            return True
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if selection.name.value != path[0]:
                    continue
                if len(path) == 1:
                    return True
                if selection.selection_set is not None and self.reaches(
                    selection.selection_set, path[1:]
                ):
                    return True
            elif isinstance(selection, InlineFragmentNode):
                if self.reaches(selection.selection_set, path):
                    return True
            elif isinstance(selection, FragmentSpreadNode) and self._fragment(
                selection.name.value, path
            ):
                return True
        return False

    def _fragment(self, name: str, path: Path) -> bool:
        key = (name, path)
        known = self._known.get(key)
        if known is not None:
            return known
        fragment = self._fragments.get(name)
        self._known[key] = False
        found = fragment is not None and self.reaches(fragment.selection_set, path)
        self._known[key] = found
        return found
