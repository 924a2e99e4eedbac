"""One exception base: every exception class of the project derives from WebhooksError,
and the tree drawn in app/core/errors.py's docstring is the tree of the code."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from typing import get_args

import app
import jobs
import schema
from app.core import errors
from app.core.errors import UserErrorCode, WebhooksError
from app.core.target_policy import TargetErrorCode

PACKAGES = (app, schema, jobs)
ROOT = Path(__file__).resolve().parents[2]
# One line of the tree: indentation (two spaces a level), class name, module.
_TREE_LINE = re.compile(r"^(?P<indent> *)(?P<name>\w+)(?: +(?P<module>[\w.]+))?")


def project_exceptions() -> list[type[BaseException]]:
    """Every exception class defined in a module of the project's packages."""
    found: list[type[BaseException]] = []
    for package in PACKAGES:
        for module_info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            module = importlib.import_module(module_info.name)
            found += [
                value
                for value in vars(module).values()
                if inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ]
    return found


def drawn_tree() -> dict[str, tuple[str | None, str | None]]:
    """Class name -> (parent in the tree, module) as the errors docstring draws it."""
    assert errors.__doc__ is not None
    lines = errors.__doc__.split("::\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    tree: dict[str, tuple[str | None, str | None]] = {}
    parents: list[str] = []  # the path from the root to the previous line
    root_indent = len(lines[0]) - len(lines[0].lstrip())
    for line in lines:
        match = _TREE_LINE.match(line[root_indent:])
        assert match is not None, line
        depth = len(match["indent"]) // 2
        del parents[depth:]
        tree[match["name"]] = (parents[-1] if parents else None, match["module"])
        parents.append(match["name"])
    return tree


def project_parent(cls: type[BaseException]) -> str | None:
    """The nearest base class the project defines itself."""
    for base in cls.__mro__[1:]:
        if base.__module__.split(".")[0] in {package.__name__ for package in PACKAGES}:
            return base.__name__
    return None


def test_every_exception_class_derives_from_the_base() -> None:
    outside = [
        f"{cls.__module__}.{cls.__name__}"
        for cls in project_exceptions()
        if not issubclass(cls, WebhooksError)
    ]

    assert outside == []


def test_the_docstring_draws_every_exception_class_under_its_base() -> None:
    # Given the classes as the code defines them
    actual = {
        cls.__name__: (project_parent(cls), None if cls is WebhooksError else cls.__module__)
        for cls in project_exceptions()
    }

    # Then the tree in the docstring has the same classes, parents and modules
    assert drawn_tree() == actual


def test_every_target_error_code_is_a_user_error_code() -> None:
    # A refused callback URL is reported with its TargetError's code as a user error.
    assert set(get_args(TargetErrorCode)) <= {code.value for code in UserErrorCode}


def test_production_code_raises_real_errors_not_asserts() -> None:
    # python -O drops assert statements: a check that guards a production path must raise.
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for package in PACKAGES
        for path in Path(package.__file__ or "").parent.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assert)
    ]
    assert found == []
