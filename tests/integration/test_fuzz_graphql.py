"""Property-based fuzzing of the GraphQL API: no generated operation may crash it.

Queries and mutations are generated from our own schema by ``hypothesis-graphql``, both
valid ones (``Mode.POSITIVE``) and ones with one schema violation (``Mode.NEGATIVE``),
some of their values swapped for telling ones (see ``BY_NAME``), and sent over HTTP to
the real app with a COMPANY key and with the PUBLISHER key, over a database holding a
subscription, events and deliveries. Bad input must come back as a clear error: never
an HTTP 5xx, never a masked "Unexpected error". Operations that crashed the API before
are replayed first on every run (the ``@example`` lines).

The default run is short and derandomised, for CI (150 examples, about 10 s, no
shrinking: a failure shows the first failing operation). For a longer random run that
shrinks what it finds to a minimal operation (``--timeout=0`` lifts pytest-timeout's
per-test limit):

    WEBHOOKS_FUZZ_EXAMPLES=5000 WEBHOOKS_FUZZ_RANDOM=1 \\
        .venv/bin/python -m pytest tests/integration/test_fuzz_graphql.py -q --timeout=0
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import ipaddress
import json
import logging
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, Phase, example, given, note
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes

from app.core.settings import Settings
from app.core.target_policy import IPAddress, ResolutionError
from app.domain.events import NewEvent
from app.domain.subscriptions import NewSubscription
from app.store.services import Services, open_services
from app.web.server import build_app
from schema.masking import UNEXPECTED
from schema.nul_characters import MESSAGE as NUL_MESSAGE
from schema.root import build_schema
from tests.payloads import order_status_payload
from tests.service import Tenants, create_subscription_for, make_settings, publish_event_with

EXAMPLES = int(os.environ.get("WEBHOOKS_FUZZ_EXAMPLES", "150"))
RANDOM = os.environ.get("WEBHOOKS_FUZZ_RANDOM", "") not in ("", "0")

SCHEMA = build_schema().as_str()

# When one field of a selection fails, graphql-core cancels its running siblings; a
# sibling task cancelled before its first step never awaits the coroutine it was given
# (Strawberry's resolver, or one of graphql-core's own), a RuntimeWarning when the
# garbage collector finds it. The response is right and nothing leaks; the fuzzer
# provokes it now and then, so it is ignored here, for those two libraries' coroutines.
UNAWAITED = (
    "ignore:coroutine '(GraphQLCoreConverter|Executor)\\..*' was never awaited:RuntimeWarning"
)
pytestmark = pytest.mark.filterwarnings(UNAWAITED)

# A public address: callback URLs that parse are accepted without real DNS. No worker
# runs here, so nothing is ever sent to it.
PUBLIC_ADDRESS = ipaddress.ip_address("93.184.215.14")


class FakeResolver:
    """Every host resolves to one public address, except ``*.invalid`` (RFC 6761)."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        if host.endswith(".invalid"):
            raise ResolutionError(host)
        return [PUBLIC_ADDRESS]


# -- custom scalars --------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**31), max_value=2**31 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(NAMES, children, max_size=3),
    max_leaves=8,
)


def value_node(value: Any) -> graphql.ValueNode:
    """A GraphQL literal for a JSON value."""
    if value is None:
        return graphql.NullValueNode()
    if isinstance(value, bool):
        return nodes.Boolean(value)
    if isinstance(value, int):
        return nodes.Int(value)
    if isinstance(value, float):
        return nodes.Float(value)
    if isinstance(value, str):
        return nodes.String(value)
    if isinstance(value, list):
        return nodes.List([value_node(item) for item in value])
    return nodes.Object(
        [
            graphql.ObjectFieldNode(name=graphql.NameNode(value=key), value=value_node(item))
            for key, item in value.items()
        ]
    )


DATETIMES = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ).map(datetime.isoformat),
    st.datetimes().map(datetime.isoformat),
    st.sampled_from(["", "now", "2026-13-01T00:00:00Z", "2026-11-28", "0000-00-00T00:00:00"]),
    st.text(max_size=30),
)

CUSTOM_SCALARS = {
    "DateTime": DATETIMES.map(nodes.String),
    "JSON": JSON_VALUES.map(value_node),
}

# Values that reach deeper than random ones do: values that pass validation (so the
# mutations really run), ids of the seeded rows (placeholders, filled in per run), and
# known troublemakers. Each argument and input field of a generated operation keeps its
# random value or is swapped for one of these: by its name (BY_NAME), or, for a string,
# for any of ANY_NAME.
SEEDED = {
    "@COMPANY@": "company_id",
    "@SUBSCRIPTION@": "subscription_id",
    "@EVENT@": "event_id",
    "@DELIVERY@": "delivery_id",
}
BY_NAME: dict[str, list[str | int | None]] = {
    "webhook": ["ORDER_STATUS", "order_status", "NO_SUCH_WEBHOOK"],
    "companyId": ["@COMPANY@", "company-b", "no-such-company"],
    "callbackUrl": [
        "https://hooks.example.com/new",
        "https://hooks.example.com/planomatic",
        "https://hooks.example.com/q?tenant=a&api_key=x",
        "http://127.0.0.1/x",
        "https://hooks.invalid/x",
        "https://[::1/x",
        "https://[::1]:0/x",
        "https://user:password@hooks.example.com/",
        "https://hooks.example.com:99999/",
        "https://xn--/x",
        "https://\u00e9xample.com/x",
    ],
    "notificationEmail": ["ops@example.com", "ops@localhost", "a" * 300 + "@example.com"],
    "id": ["@SUBSCRIPTION@", "@EVENT@", "@DELIVERY@", "00000000-0000-0000-0000-000000000000"],
    "subscriptionId": ["@SUBSCRIPTION@", "@EVENT@"],
    "deliveryId": ["@DELIVERY@", "@SUBSCRIPTION@"],
    "eventId": ["@EVENT@", "@DELIVERY@"],
    "subject": ["ord_1", "ord_2"],
    "idempotencyKey": ["key-1", "key-1", "key-2"],
    "name": ["api_key", "token", "tenant", "a b", "Authorization", "webhook-id", "Host"],
    "value": ["apikey-0123456789", "v" * 2000, "Bearer a\r\nX: b", "v" * 5000],
    "first": [1, 2, 100, None],
    "after": [None, None, None, "MA", "bnVsbA", "eyJhIjogMX0"],
    "since": ["2026-01-01T00:00:00Z"],
}
ANY_NAME = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\u202e",
    "\U0001f4a5",
    "x" * 5000,
    "'; DROP TABLE events; --",
    "%00%ff",
    "\\",
]


def literal(value: str | int | None) -> graphql.ValueNode:
    if value is None:
        return graphql.NullValueNode()
    if isinstance(value, int):
        return nodes.Int(value)
    return nodes.String(value)


class _Swapper(graphql.Visitor):
    """Swaps argument and input field values for the ones above, drawing as it goes."""

    def __init__(self, draw: st.DrawFn) -> None:
        super().__init__()
        self.draw = draw

    def _swap(self, name: str, value: graphql.ValueNode) -> graphql.ValueNode | None:
        choices = ["keep", "named", "named", "any"] if name in BY_NAME else ["keep", "any"]
        choice = self.draw(st.sampled_from(choices))
        if choice == "named":
            return literal(self.draw(st.sampled_from(BY_NAME[name])))
        if choice == "any" and isinstance(value, graphql.StringValueNode):
            return literal(self.draw(st.sampled_from(ANY_NAME)))
        return None

    def enter_argument(self, node: graphql.ArgumentNode, *_: Any) -> Any:
        swapped = self._swap(node.name.value, node.value)
        return None if swapped is None else dataclasses.replace(node, value=swapped)

    def enter_object_field(self, node: graphql.ObjectFieldNode, *_: Any) -> Any:
        swapped = self._swap(node.name.value, node.value)
        return None if swapped is None else dataclasses.replace(node, value=swapped)


def _documents(mode: Mode) -> st.SearchStrategy[graphql.DocumentNode]:
    return from_schema(SCHEMA, custom_scalars=CUSTOM_SCALARS, mode=mode, print_ast=lambda d: d)


@st.composite
def operations(draw: st.DrawFn) -> str:
    """A generated query or mutation, valid or with one violation, some strings swapped."""
    document = draw(_documents(Mode.POSITIVE) | _documents(Mode.NEGATIVE))
    return graphql.print_ast(graphql.visit(document, _Swapper(draw)))


OPERATIONS = operations()


# -- the app under test -------------------------------------------------------------------


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # Thousands of requests from one key: the rate limit would answer 429s instead.
    return make_settings(
        database_url, tmp_path, rate_limit_per_second=1_000_000.0, rate_limit_burst=1_000_000
    )


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with open_services(settings, resolver=FakeResolver()) as opened:
        yield opened


@pytest.fixture
async def client(
    services: Services, settings: Settings, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[httpx.AsyncClient]:
    # Strawberry logs every GraphQL error with the error object, which holds the frames of
    # the resolvers cancelled beside it (see UNAWAITED); pytest keeps log records to the
    # end of the test. Thousands of expected errors need no record, and without them the
    # orphaned coroutines are collected below, under this module's warning filter.
    caplog.set_level(logging.CRITICAL, logger="strawberry.execution")
    app = build_app(settings, services=services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
    for _ in range(20):  # cancellations settle over a few turns of the loop
        await asyncio.sleep(0)
    gc.collect()


@dataclasses.dataclass(frozen=True)
class Seeded:
    """Keys by role, and the rows the placeholders stand for."""

    keys: dict[str, str]
    company_id: str
    subscription_id: str
    event_id: str
    delivery_id: str

    def fill(self, operation: str) -> str:
        for placeholder, attribute in SEEDED.items():
            operation = operation.replace(placeholder, getattr(self, attribute))
        return operation


@pytest.fixture
async def seeded(services: Services, tenants: Tenants) -> Seeded:
    """A subscription with deliveries of two events, so that reads have rows to walk."""
    subscription, _ = await create_subscription_for(
        services,
        tenants.a,
        NewSubscription(
            "ORDER_STATUS",
            "https://hooks.example.com/planomatic",
            "ops@example.com",
            api_key_params=[("api_key", "fuzz-key-0123456789")],
        ),
    )
    for number in (1, 2):
        event = await publish_event_with(
            services,
            NewEvent(
                tenants.a, "ORDER_STATUS", order_status_payload(order_id=number), f"ord_{number}"
            ),
        )
    async with services.db.pool.connection() as connection:
        cursor = await connection.execute(
            "SELECT id FROM deliveries WHERE event_id = %s", (event.id,)
        )
        row = await cursor.fetchone()
    assert row is not None
    return Seeded(
        keys={"COMPANY": tenants.key_a, "PUBLISHER": tenants.publisher},
        company_id=tenants.a,
        subscription_id=str(subscription.id),
        event_id=str(event.id),
        delivery_id=str(row[0]),
    )


def crash_report(role: str, query: str, response: httpx.Response) -> str:
    return f"{role} key got HTTP {response.status_code} for:\n{query}\n\n{response.text[:2000]}"


def unexpected_errors(response: httpx.Response) -> list[Any]:
    if not response.headers.get("content-type", "").startswith("application/json"):
        return []
    body = response.json()
    errors = body.get("errors") or [] if isinstance(body, dict) else []
    return [error for error in errors if str(error.get("message", "")).startswith(UNEXPECTED)]


def graphql_literal(value: Any) -> str:
    """``value`` written as a GraphQL input literal (object keys are bare names)."""
    if isinstance(value, dict):
        members = (f"{key}: {graphql_literal(item)}" for key, item in value.items())
        return "{" + ", ".join(members) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(graphql_literal(item) for item in value) + "]"
    # Strings, numbers, true, false and null read the same in JSON and in GraphQL.
    return json.dumps(value)


# Operations that crashed the API before (found by this fuzzer or by hand around what
# it found), replayed on every run.
NUL_IN_FILTER = '{ webhookSubscriptions(filter: {webhook: "\\u0000"}) { nodes { id } } }'
NUL_IN_SUBJECT = '{ events(filter: {subject: "a\\u0000b"}) { nodes { id } } }'
NUL_IN_DELIVERY_FILTER = '{ deliveries(filter: {webhook: "\\u0000"}) { nodes { id } } }'
NUL_IN_COMPANY_ID = """
mutation {
  publishEvent(input: {companyId: "\\u0000", webhook: "ORDER_STATUS", payload: @PAYLOAD@}) {
    event { id }
    userErrors { code }
  }
}
""".replace("@PAYLOAD@", graphql_literal(order_status_payload()))
NUL_IN_PAYLOAD = """
mutation {
  publishEvent(input: {companyId: "@COMPANY@", webhook: "ORDER_STATUS", payload: @PAYLOAD@}) {
    event { id }
    userErrors { code }
  }
}
""".replace("@PAYLOAD@", graphql_literal(order_status_payload(a="\x00")))
# A failing field cancels its siblings; one waiting on a DataLoader future shared with
# another branch used to cancel that branch too, and the request died with CancelledError.
FAILING_BESIDE_SHARED_LOADS = """
{
  deliveries {
    nodes {
      event { webhook { key } company { name } }
      subscription { webhook { key } deliveries(first: 0) { nodes { id } } }
    }
  }
}
"""
UNSPLITTABLE_URL = """
mutation {
  createWebhookSubscription(
    input: {webhook: "ORDER_STATUS", callbackUrl: "https://[::1/x", notificationEmail: "a@b.co"}
  ) {
    subscription { id }
    userErrors { field code }
  }
}
"""


@hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    phases=list(Phase) if RANDOM else [phase for phase in Phase if phase is not Phase.shrink],
    database=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(query=OPERATIONS)
@example(query=NUL_IN_FILTER)
@example(query=NUL_IN_SUBJECT)
@example(query=NUL_IN_DELIVERY_FILTER)
@example(query=NUL_IN_COMPANY_ID)
@example(query=NUL_IN_PAYLOAD)
@example(query=UNSPLITTABLE_URL)
@example(query=FAILING_BESIDE_SHARED_LOADS)
async def test_no_generated_operation_crashes_the_api(
    client: httpx.AsyncClient, seeded: Seeded, query: str
) -> None:
    query = seeded.fill(query)
    note(f"operation:\n{query}")

    for role, key in seeded.keys.items():
        response = await client.post(
            "/graphql", json={"query": query}, headers={"authorization": f"Bearer {key}"}
        )

        assert response.status_code < 500, crash_report(role, query, response)
        unexpected = unexpected_errors(response)
        assert not unexpected, crash_report(role, query, response)


PUBLISH = """
mutation Publish($input: PublishEventInput!) {
  publishEvent(input: $input) { event { id } userErrors { code } }
}
"""


async def test_nul_characters_are_refused_whether_literal_or_variable(
    client: httpx.AsyncClient, seeded: Seeded, services: Services
) -> None:
    publisher = {"authorization": f"Bearer {seeded.keys['PUBLISHER']}"}
    company = {"authorization": f"Bearer {seeded.keys['COMPANY']}"}

    def publish(payload: dict[str, Any]) -> dict[str, Any]:
        variables = {"companyId": seeded.company_id, "webhook": "ORDER_STATUS", "payload": payload}
        return {"query": PUBLISH, "variables": {"input": variables}}

    async with services.db.pool.connection() as connection:
        before = await (await connection.execute("SELECT count(*) FROM events")).fetchone()

    responses = [
        await client.post(
            "/graphql", json={"query": seeded.fill(NUL_IN_PAYLOAD)}, headers=publisher
        ),
        await client.post(
            "/graphql", json=publish(order_status_payload(a="x\x00y")), headers=publisher
        ),
        await client.post(
            "/graphql", json=publish(order_status_payload(**{"a\x00": 1})), headers=publisher
        ),
        await client.post("/graphql", json={"query": NUL_IN_FILTER}, headers=company),
    ]

    for response in responses:
        assert response.status_code == 200
        assert response.json() == {
            "data": None,
            "errors": [{"message": NUL_MESSAGE, "extensions": {"code": "BAD_USER_INPUT"}}],
        }
    async with services.db.pool.connection() as connection:
        after = await (await connection.execute("SELECT count(*) FROM events")).fetchone()
    assert after == before


async def test_a_failing_field_beside_shared_loads_fails_alone(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    # A race (it hit about one request in 30 before the fix): repeat it.
    for _ in range(40):
        for key in seeded.keys.values():
            response = await client.post(
                "/graphql",
                json={"query": FAILING_BESIDE_SHARED_LOADS},
                headers={"authorization": f"Bearer {key}"},
            )

            body = response.json()
            assert response.status_code == 200
            assert body["data"] is None
            assert {error["message"] for error in body["errors"]} == {"`first` must be at least 1"}


async def test_a_callback_url_too_broken_to_split_is_a_user_error(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": UNSPLITTABLE_URL},
        headers={"authorization": f"Bearer {seeded.keys['COMPANY']}"},
    )

    payload = response.json()["data"]["createWebhookSubscription"]
    assert payload["subscription"] is None
    assert payload["userErrors"] == [{"field": ["input", "callbackUrl"], "code": "INVALID"}]


def test_the_generator_makes_both_queries_and_mutations() -> None:
    # Guards the fuzzer itself: an operation kind it cannot generate goes untested.
    kinds: set[graphql.OperationType] = set()

    @hypothesis_settings(max_examples=50, derandomize=True, database=None)
    @given(operation=OPERATIONS)
    def collect(operation: str) -> None:
        [definition] = graphql.parse(operation).definitions
        assert isinstance(definition, graphql.OperationDefinitionNode)
        kinds.add(definition.operation)

    collect()

    assert kinds == {graphql.OperationType.QUERY, graphql.OperationType.MUTATION}
