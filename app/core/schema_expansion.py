"""How much a payload schema weighs once its ``$ref``s are followed.

A schema's size on disk says little about the work of validating with it: a definition
that refers twice to the next, forty times over, is a kilobyte long yet makes a validator
visit 2**40 subschemas per payload value, which hangs ``webhook-type put`` (checking its
sample) and every ``publishEvent`` of that type. Counting the subschemas as a validator
meets them, each ``$ref`` counted as the subschemas it names, bounds that work before a
schema is accepted. The count follows references the way the validator resolves them:
a fragment is a JSON pointer (percent-decoded) or an anchor, in the resource of the
nearest enclosing ``$id``. A reference back into itself (a recursive schema) counts once
and is noted: a validator listing every violation walks such a schema once per path
through the payload, so only the first violation is listed for one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

_REFERENCE_KEYWORDS = ("$ref", "$dynamicRef")
_ANCHOR_KEYWORDS = ("$anchor", "$dynamicAnchor")
# Keywords whose values are data, not schemas: nothing inside them is followed.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
# Definitions apply only where a reference names them, and count there.
_UNAPPLIED_KEYWORDS = _DATA_KEYWORDS | {"$defs", "definitions"}


@dataclass(frozen=True)
class Expansion:
    """The subschemas a validator may meet (at most ``cap`` + 1 is counted), whether a
    reference leads back into itself, and the references that name nothing."""

    subschemas: int
    recursive: bool
    unresolved: tuple[str, ...] = ()


def expansion(schema: dict[str, Any], cap: int) -> Expansion:
    """Count ``schema``'s subschemas with every local reference followed, in time linear
    in the schema's size (each place is counted once and its count reused)."""
    anchors = _anchors(schema)
    counted: dict[int, int] = {}
    active: set[int] = set()
    recursive = False
    unresolved: list[str] = []
    # Each frame: the node, its resource, what it leads to, and its count so far.
    stack: list[tuple[Any, Iterator[tuple[Any, Any] | str], list[int]]] = []

    def enter(node: Any, resource: Any) -> None:
        active.add(id(node))
        stack.append((node, _leads_to(node, resource, anchors), [1]))

    enter(schema, schema)
    total = 0
    while stack:
        node, leads, count = stack[-1]
        step = next(leads, None)
        if step is None:
            stack.pop()
            active.discard(id(node))
            counted[id(node)] = count[0]
            if stack:
                parent = stack[-1][2]
                parent[0] = min(parent[0] + count[0], cap + 1)
            else:
                total = count[0]
            continue
        if isinstance(step, str):
            unresolved.append(step)
            continue
        target, resource = step
        if id(target) in counted:
            count[0] = min(count[0] + counted[id(target)], cap + 1)
        elif id(target) in active:
            recursive = True
            count[0] = min(count[0] + 1, cap + 1)
        else:
            enter(target, resource)
    return Expansion(total, recursive, tuple(unresolved))


def _leads_to(
    node: Any, resource: Any, anchors: dict[tuple[int, str], tuple[Any, Any]]
) -> Iterator[tuple[Any, Any] | str]:
    """The places ``node`` leads a validator to, each with its resource; a reference
    that names nothing is given as its text."""
    if isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list):
                yield item, resource
        return
    if not isinstance(node, dict):
        return
    if isinstance(node.get("$id"), str):
        resource = node
    for key, value in node.items():
        if key in _UNAPPLIED_KEYWORDS:
            continue
        if key in _REFERENCE_KEYWORDS and isinstance(value, str):
            found = _resolved(value, resource, anchors)
            yield found if found is not None else value
        elif isinstance(value, dict | list):
            yield value, resource


def _resolved(
    reference: str, resource: Any, anchors: dict[tuple[int, str], tuple[Any, Any]]
) -> tuple[Any, Any] | None:
    """The place a local reference names, and its resource; None when it names nothing."""
    if not reference.startswith("#"):
        return None
    fragment = unquote(reference[1:])
    if fragment and not fragment.startswith("/"):
        return anchors.get((id(resource), fragment))
    node = resource
    for segment in fragment.split("/")[1:] if fragment else ():
        segment = segment.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and segment in node:
            node = node[segment]
        elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
            node = node[int(segment)]
        else:
            return None
        if isinstance(node, dict) and isinstance(node.get("$id"), str):
            resource = node
    return node, resource


def _anchors(schema: dict[str, Any]) -> dict[tuple[int, str], tuple[Any, Any]]:
    """Every anchor, keyed by its resource and name, with the place it marks."""
    found: dict[tuple[int, str], tuple[Any, Any]] = {}
    stack: list[tuple[Any, Any]] = [(schema, schema)]
    while stack:
        node, resource = stack.pop()
        if isinstance(node, list):
            stack.extend((item, resource) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("$id"), str):
            resource = node
        for keyword in _ANCHOR_KEYWORDS:
            name = node.get(keyword)
            if isinstance(name, str):
                found.setdefault((id(resource), name), (node, resource))
        stack.extend((value, resource) for key, value in node.items() if key not in _DATA_KEYWORDS)
    return found
