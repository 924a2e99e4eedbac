"""Named SQL queries: the loader, and the package's query files."""

from __future__ import annotations

import ast
import re
from importlib import resources
from pathlib import Path

import pytest

from app.store.queries import QUERIES, load_queries, parse_queries

SAMPLE = """\
-- A preamble before the first query is ignored.

-- get_thing --
-- One thing by id.
SELECT id, name
FROM things
WHERE id = %(id)s;

-- count_things --
-- How many things there are.
-- (a second comment line is dropped too)
SELECT count(*) FROM things;
"""

ROOT = Path(__file__).resolve().parents[2]
QUERY_FILES = {
    entry.name: entry.read_text(encoding="utf-8")
    for entry in (resources.files("sql") / "queries").iterdir()
    if entry.name.endswith(".sql")
}
# Every place the code names a query: db/session calls and QUERIES[...] lookups.
_QUERY_USE = re.compile(
    r"""(?:fetch_one|fetch_all|execute)\(\s*["']([a-z_][a-z0-9_]*)["']"""
    r"""|QUERIES\[\s*["']([a-z_][a-z0-9_]*)["']\s*\]"""
)


def test_parse_queries_splits_named_blocks_and_drops_comment_lines() -> None:
    # Given a file with a preamble and two named blocks
    # When it is parsed
    queries = parse_queries(SAMPLE)

    # Then each name maps to its statement, comments and surrounding blank lines removed
    assert queries == {
        "get_thing": "SELECT id, name\nFROM things\nWHERE id = %(id)s;",
        "count_things": "SELECT count(*) FROM things;",
    }


def test_parse_queries_of_text_without_headers_is_empty() -> None:
    assert parse_queries("-- just a comment\n") == {}


def test_a_name_defined_twice_in_a_file_is_refused() -> None:
    text = "-- twice --\nSELECT 1;\n\n-- twice --\nSELECT 2;\n"

    with pytest.raises(ValueError, match="query 'twice' is defined twice"):
        parse_queries(text)


def test_a_block_without_a_statement_is_refused() -> None:
    text = "-- empty --\n-- Only a comment.\n\n-- next --\nSELECT 1;\n"

    with pytest.raises(ValueError, match="query 'empty' has no statement"):
        parse_queries(text)


def test_a_header_must_be_a_whole_lowercase_line() -> None:
    # Given comment lines that merely look like headers
    text = "-- real --\nSELECT 1; -- not_a_header --\n--  Spaced --\n-- Upper --\n"

    # Then only the exact `-- name --` line starts a query
    assert list(parse_queries(text)) == ["real"]


@pytest.mark.parametrize("file_name", sorted(QUERY_FILES))
def test_every_query_file_loads(file_name: str) -> None:
    # Given one of the package's query files
    text = QUERY_FILES[file_name]

    # When it is parsed
    queries = parse_queries(text)

    # Then it holds at least one query, each documented by a comment line, all in QUERIES
    assert queries, f"{file_name} defines no query"
    for name in queries:
        header = f"-- {name} --\n"
        assert re.search(re.escape(header) + r"-- \S", text), f"{name} has no comment line"
        assert QUERIES[name] == queries[name]


def test_query_names_are_unique_across_files() -> None:
    # load_queries refuses duplicates; the total proves no file was silently skipped.
    per_file = [parse_queries(text) for text in QUERY_FILES.values()]

    assert len(load_queries()) == sum(len(queries) for queries in per_file)


def test_statements_take_named_parameters_only() -> None:
    # psycopg's %(name)s style: a bare %s would mean positional arguments.
    for name, statement in QUERIES.items():
        assert "%s" not in statement, name


def test_every_query_the_code_names_exists() -> None:
    # Given every query name used in the service's code
    used: set[str] = set()
    for folder in ("app", "schema", "jobs"):
        for path in (ROOT / folder).rglob("*.py"):
            for match in _QUERY_USE.finditer(path.read_text(encoding="utf-8")):
                used.add(match.group(1) or match.group(2))

    # Then each is defined in sql/queries (a typo would fail only at run time)
    assert used, "found no query use: the pattern is out of date"
    assert sorted(used - set(QUERIES)) == []


def string_literals(folders: tuple[str, ...]) -> set[str]:
    """Every string constant in the Python code of ``folders``, docstrings left out."""
    found: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            bare = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
            found |= {
                node.value
                for node in ast.walk(tree)
                if isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in bare
            }
    return found


def test_every_query_defined_is_named_by_the_service_or_the_benchmark() -> None:
    # Given every string in the service's and the benchmark's code: a query may be named
    # far from the call that runs it (retention's PURGES, listen's argument). Tests do not
    # count: a query only a test runs is dead code the test keeps alive.
    named = string_literals(("app", "schema", "jobs", "bench"))

    # Then every query of sql/queries is named there
    assert sorted(set(QUERIES) - named) == []
