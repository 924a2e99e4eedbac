"""The NUL check of variables walks any value without recursing."""

from __future__ import annotations

from typing import Any

from schema.nul_characters import holds_nul


def nested(levels: int, leaf: Any) -> Any:
    value = leaf
    for index in range(levels):
        value = [value] if index % 2 else {"k": value}
    return value


def test_nul_is_found_in_a_string_an_object_key_or_deep_down() -> None:
    assert holds_nul({"a": ["x", "y\x00"]})
    assert holds_nul({"ke\x00y": 1})
    assert holds_nul(nested(20_000, "\x00"))


def test_values_without_nul_pass_however_deep() -> None:
    assert not holds_nul({"a": ["x", 1, 2.5, None, True, {"b": "c"}]})
    assert not holds_nul(nested(20_000, "fine"))
