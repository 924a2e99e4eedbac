"""Named SQL queries: every statement the service runs, loaded from ``sql/queries/*.sql``.

Each file holds blocks introduced by a ``-- name --`` line, then a comment line saying
what the query does, then the statement with ``%(name)s`` parameters. Python never
assembles SQL from strings; it picks a query by name.
"""

from __future__ import annotations

import re
from importlib import resources

_HEADER = re.compile(r"^-- ([a-z_][a-z0-9_]*) --$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    """Split one file's text into ``{name: statement}``."""
    queries: dict[str, str] = {}
    parts = _HEADER.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        statement = "\n".join(lines).strip()
        if not statement:
            raise ValueError(f"query {name!r} has no statement")
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = statement
    return queries


def load_queries() -> dict[str, str]:
    """Every named query of the package's ``sql/queries`` folder."""
    queries: dict[str, str] = {}
    folder = resources.files("sql") / "queries"
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, statement in parse_queries(entry.read_text(encoding="utf-8")).items():
            if name in queries:
                raise ValueError(f"query {name!r} is defined in two files")
            queries[name] = statement
    return queries


QUERIES: dict[str, str] = load_queries()
