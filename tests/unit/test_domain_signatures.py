"""Domain functions take what they use, and tenancy one way (app/domain/__init__.py).

No module of ``app.domain`` imports the process's ``Services`` (every import counts, as in
test_layers.py), and no public domain function that reads or writes (an ``async`` one) is
handed a bare ``company_id`` to confine itself by: one working for an API caller takes the
``Viewer``. Only the system's own administration (companies, API keys) names companies by
id, as the data it works on; a pure function (``delivery_body``) may carry one as content.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.test_layers import ROOT, imported_modules, module_name

SERVICES = "app.store.services"
# Modules whose functions work for the system, on companies named by id (the CLI).
SYSTEM_MODULES = {"app.domain.companies", "app.domain.api_keys"}


def domain_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted((ROOT / "app" / "domain").glob("*.py"))}


def services_imports(sources: dict[str, list[tuple[int, str]]]) -> list[str]:
    """The imports of the services module (or anything in it), as readable lines."""
    return [
        f"{module}:{line} imports {name}"
        for module, imports in sorted(sources.items())
        for line, name in imports
        if name == SERVICES or name.startswith(SERVICES + ".")
    ]


def company_id_parameters(module: str, source: str) -> list[str]:
    """The public async functions of ``source`` that take a ``company_id`` (outside the
    system's modules), as readable lines."""
    if module in SYSTEM_MODULES:
        return []
    found = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.AsyncFunctionDef):
            continue
        if node.name.startswith("_"):
            continue
        arguments = node.args
        names = [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]
        if "company_id" in names:
            found.append(f"{module}.{node.name}:{node.lineno} takes company_id")
    return found


def test_no_domain_module_imports_the_services() -> None:
    sources = {module: imported_modules(path) for module, path in domain_modules().items()}

    assert services_imports(sources) == []


def test_no_tenant_scoped_domain_function_takes_a_company_id() -> None:
    found = [
        line
        for module, path in domain_modules().items()
        for line in company_id_parameters(module, path.read_text(encoding="utf-8"))
    ]

    assert found == []


def test_the_checks_find_what_they_forbid() -> None:
    # Given a module importing the services, and functions confined by a company id
    sources = {
        "app.domain.events": [(3, "app.store.services.Services"), (4, "app.store.database")],
        "app.domain.retention": [(5, "app.store.services")],
    }
    source = (
        "async def list_things(db, company_id): ...\n"
        "async def _helper(company_id): ...\n"
        "async def get_thing(db, viewer, *, company_id=None): ...\n"
        "def body(company_id): ...\n"
    )

    # Then each check names every one of them, and nothing else
    assert services_imports(sources) == [
        "app.domain.events:3 imports app.store.services.Services",
        "app.domain.retention:5 imports app.store.services",
    ]
    assert company_id_parameters("app.domain.things", source) == [
        "app.domain.things.list_things:1 takes company_id",
        "app.domain.things.get_thing:3 takes company_id",
    ]
    assert company_id_parameters("app.domain.companies", source) == []
