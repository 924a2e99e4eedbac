"""Imports point one way: down the layers of README's "Layout", never up or sideways.

From the top: ``app.run`` (processes) > ``app.web`` (the HTTP app) > ``schema`` and
``jobs`` (the adapters) > ``app.domain`` and ``app.delivery`` > ``app.store`` >
``app.core``. A module may import its own layer and any layer below it. Two layers on
one level (the two adapters; the domain and the delivery engine) never import each other.
Every import counts, also those under ``TYPE_CHECKING`` and inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Layer -> level; a higher level may import a lower one.
LEVELS = {
    "app.core": 0,
    "app.store": 1,
    "app.domain": 2,
    "app.delivery": 2,
    "schema": 3,
    "jobs": 3,
    "app.web": 4,
    "app.run": 5,
}
PACKAGES = ("app", "schema", "jobs")


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to, or None for a module outside them."""
    for layer in sorted(LEVELS, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def allowed(importer: str, imported: str) -> bool:
    """Whether a module of layer ``importer`` may import one of layer ``imported``."""
    return importer == imported or LEVELS[imported] < LEVELS[importer]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every (line, module) that ``path`` imports from the project's own packages."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from app.core import errors`` imports the module app.core.errors.
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] in PACKAGES]


def violations(sources: dict[str, list[tuple[int, str]]]) -> list[str]:
    """The imports that point up or sideways, as readable lines."""
    wrong = []
    for importer, imports in sorted(sources.items()):
        importer_layer = layer_of(importer)
        if importer_layer is None:
            continue
        for line, imported in imports:
            imported_layer = layer_of(imported)
            if imported_layer is not None and not allowed(importer_layer, imported_layer):
                wrong.append(f"{importer}:{line} imports {imported} ({imported_layer})")
    return wrong


def project_sources() -> dict[str, list[tuple[int, str]]]:
    return {
        module_name(path): imported_modules(path)
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }


def test_every_import_points_down_the_layers() -> None:
    assert violations(project_sources()) == []


def test_every_module_of_app_sits_in_a_layer() -> None:
    loose = [name for name in project_sources() if name != "app" and layer_of(name) is None]
    assert loose == []


def test_an_upward_or_sideways_import_is_a_violation() -> None:
    sources = {
        "app.core.errors": [(3, "app.store.database")],
        "app.domain.events": [(4, "app.delivery.attempts"), (5, "app.store.queue")],
        "jobs.delivery": [(6, "schema.types"), (7, "app.delivery.attempts")],
        "app.run.cli": [(8, "app.web.server"), (9, "app.core.settings")],
    }
    assert violations(sources) == [
        "app.core.errors:3 imports app.store.database (app.store)",
        "app.domain.events:4 imports app.delivery.attempts (app.delivery)",
        "jobs.delivery:6 imports schema.types (schema)",
    ]


def test_the_readme_layout_names_every_layer() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    missing = [layer for layer in LEVELS if f"{layer.replace('.', '/')}/" not in layout]
    assert missing == []
