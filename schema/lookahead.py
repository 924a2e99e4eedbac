"""What the client selected below the current field, to load it together with the field.

A page of deliveries loads its deliveries' attempts with it when the document asks for
them, so that they need no await per delivery (see ``Delivery.attempts``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from strawberry.types.nodes import SelectedField, Selection

from schema.context import Info


def selects(info: Info, *paths: Sequence[str]) -> bool:
    """Whether the selection of the current field reaches any of ``paths`` (GraphQL names).

    Fragments, named or inline, count as if written in place; aliases do not matter.
    ``@include``/``@skip`` are not evaluated: a field they leave out still counts, so a
    caller may load something unused, never miss something used.
    """
    fields = [field for field in info.selected_fields if isinstance(field, SelectedField)]
    return any(_reaches(field.selections, path) for field in fields for path in paths)


def _reaches(selections: Iterable[Selection], path: Sequence[str]) -> bool:
    if not path:
        return True
    for selection in selections:
        if isinstance(selection, SelectedField):
            if selection.name == path[0] and _reaches(selection.selections, path[1:]):
                return True
        elif _reaches(selection.selections, path):  # a fragment: its fields are ours
            return True
    return False
