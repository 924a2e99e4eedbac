"""One semantics for content filters: PostgreSQL's verdict and the Python explainer's agree.

Random filters on random payloads, each evaluated twice: compiled to jsonpath and run by
``webhooks_filter_matches`` (the function the fan-out calls, through the named query the
test query uses), and by ``app/core/filter_verdict.py``, which writes the reasons.
Payload keys and strings are drawn from a small alphabet with hostile characters in it
(quotes, backslashes, ``$``, newlines, non-ASCII, astral), so that filters often hit,
and quoting is exercised on both keys and values; numbers include floats whose binary
and decimal values differ.

The default run is derandomised for CI; a longer random one:

    WEBHOOKS_FILTER_EXAMPLES=5000 WEBHOOKS_FILTER_RANDOM=1 \\
        .venv/bin/python -m pytest tests/integration/test_filter_agreement.py -q --timeout=0
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, assume, event, example, given, note
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from app.core.filter_jsonpath import filter_jsonpath
from app.core.filter_verdict import judge
from app.core.payload_filter import MEMBERSHIP, ORDER, parse_filter
from app.store.services import Services

EXAMPLES = int(os.environ.get("WEBHOOKS_FILTER_EXAMPLES", "400"))
RANDOM = os.environ.get("WEBHOOKS_FILTER_RANDOM", "") not in ("", "0")

KEYS = st.sampled_from(["a", "b", "order_status", 'q"k', "b\\s", "é", "名😀", "$x", "n l"])
TEXT = st.text(alphabet=["a", "B", "é", '"', "\\", "$", "\n", "😀", "\u2028"], max_size=3)
NUMBERS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0.5, -0.0, 1.0, 2.5, 1e23, 10**23, 99999999999999991611392, 0.1]),
    st.floats(allow_nan=False, allow_infinity=False),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=10,
)
PAYLOADS = st.dictionaries(KEYS, VALUES, max_size=5)

PATHS = st.lists(KEYS, min_size=1, max_size=3).map(".".join).filter(lambda key: key[0] != "$")
OPERATORS = st.one_of(
    st.tuples(st.sampled_from(["$eq", "$ne"]), SCALARS),
    st.tuples(st.sampled_from(MEMBERSHIP), st.lists(SCALARS, min_size=1, max_size=3)),
    st.tuples(st.just("$exists"), st.booleans()),
    st.tuples(st.sampled_from(ORDER), st.one_of(NUMBERS, TEXT)),
)
CONDITIONS = st.one_of(
    SCALARS,
    st.lists(OPERATORS, min_size=1, max_size=2, unique_by=lambda pair: pair[0]).map(dict),
)
FIELDS = st.dictionaries(PATHS, CONDITIONS, max_size=3)


def _combined(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    logical = st.one_of(
        st.builds(lambda parts: {"$and": parts}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda parts: {"$or": parts}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda part: {"$not": part}, children),
    )
    return st.builds(lambda fields, logic: {**fields, **logic}, FIELDS, logical)


FILTERS = st.recursive(FIELDS, _combined, max_leaves=8)


async def postgresql_matches(services: Services, path: str, payload: dict[str, Any]) -> bool:
    row = await services.db.fetch_one("filter_matches", payload=Jsonb(payload), filter_path=path)
    assert row is not None
    matched = row["matched"]
    assert isinstance(matched, bool)
    return matched


@hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    database=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(document=FILTERS, payload=PAYLOADS)
@example(document={"a": 1e23}, payload={"a": 99999999999999991611392})
@example(document={"a": None}, payload={"a": [None]})
@example(document={"a": 1}, payload={"a": [[1]]})
@example(document={"a.b": 1}, payload={"a": [[{"b": 1}]]})
@example(document={"a.b": {"$exists": True}}, payload={"a": [{"b": None}]})
@example(document={"a": {"$ne": "x"}}, payload={"a": 1})
@example(document={"a": {"$gt": "Z"}}, payload={"a": "é"})
@example(document={'q"k.b\\s': "\u2028"}, payload={'q"k': {"b\\s": "\u2028"}})
async def test_postgresql_and_the_explainer_agree(
    services: Services, document: dict[str, Any], payload: dict[str, Any]
) -> None:
    # Given a valid filter (the generator may exceed the limits now and then)
    tree, _ = parse_filter(("filter",), document)
    assume(tree is not None)
    assert tree is not None
    path = filter_jsonpath(tree)
    note(f"jsonpath: {path}")

    # When PostgreSQL and the explainer each evaluate it on the payload
    verdict = judge(tree, payload)
    matched = await postgresql_matches(services, path, payload)
    event(f"matched: {matched}")

    # Then they agree, and a mismatch always names at least one failed clause
    assert verdict.matched is matched, verdict.reasons
    assert bool(verdict.mismatches) is not matched
