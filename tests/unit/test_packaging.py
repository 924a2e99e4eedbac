"""The distribution lists every package setuptools would find, so installing warns of none."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def importable_folders(package: str) -> set[str]:
    """``package`` and every folder below it that Python could import (as setuptools sees
    them: a folder with a valid identifier as its name is a namespace package)."""
    found = {package}
    for folder in (ROOT / package.replace(".", "/")).rglob("*"):
        relative = folder.relative_to(ROOT)
        importable = all(part.isidentifier() for part in relative.parts)
        if folder.is_dir() and importable and folder.name != "__pycache__":
            found.add(".".join(relative.parts))
    return found


def test_every_importable_folder_of_a_listed_package_is_listed() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    top_level = {name for name in listed if "." not in name}
    expected = set().union(*(importable_folders(name) for name in top_level))
    assert expected - listed == set()
