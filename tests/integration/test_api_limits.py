"""Abuse limits of the GraphQL API over HTTP: query shape, batching, body and payload
size, introspection and GraphiQL in production, masked unexpected errors, rate limits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from app.domain import deliveries
from app.domain.api_keys import generate_key
from app.store.services import Services
from app.web.server import build_app
from schema.limits import ALIASES_CODE, COST_CODE, DEPTH_CODE
from schema.masking import UNEXPECTED
from schema.root import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from schema.validation import OPERATION_NAME_REQUIRED
from tests.payloads import order_status_payload
from tests.service import GraphQLClient, Tenants, make_settings

PUBLISH = """
mutation Publish($input: PublishEventInput!) {
  publishEvent(input: $input) {
    event { id }
    userErrors { field code message }
  }
}
"""

# 12 levels of selection under the mutation field: over MAX_DEPTH (10).
DEEP_PUBLISH = """
mutation Deep($input: PublishEventInput!) {
  publishEvent(input: $input) {
    event { deliveries { event { deliveries { event { deliveries { event {
      deliveries { event { deliveries { event { id } } } } } } } } } } }
  }
}
"""

VIEWER = "query { viewer { role } }"
DELIVERIES = "query { deliveries { nodes { id status } } }"
UNKNOWN_FIELD = "query { viewer { role secretAdminField } }"
SUBSCRIPTIONS = "query { webhookSubscriptions { nodes { id } } }"
INTROSPECTION = "query { __schema { queryType { name } types { name } } }"
TYPE_INTROSPECTION = 'query { __type(name: "Query") { name fields { name } } }'

# The query: 100 x 100 x 100 deliveries under each of 15 aliases.
NESTED_PAGE = """
  deliveries(first: 100) { nodes { subscription {
    deliveries(first: 100) { nodes { subscription {
      deliveries(first: 100) { nodes { id } } } } } } } }
"""
NESTED_PAGES = "query Nested {" + " ".join(f"a{n}: {NESTED_PAGE}" for n in range(15)) + "}"
TWO_OPERATIONS = "query A { viewer { role } } query B { b: viewer { role } }"
MISSPELT = "query { viewer { rol } }"

CREATE = """
mutation Create($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) {
    subscription { id }
    userErrors { field code message }
  }
}
"""


def aliased_publishes(count: int) -> str:
    fields = "\n".join(
        f"p{index}: publishEvent(input: $input) {{ event {{ id }} }}" for index in range(count)
    )
    return f"mutation Many($input: PublishEventInput!) {{\n{fields}\n}}"


def publish_with_many_tokens() -> str:
    # Each repeated `__typename` is one token; the document stays valid otherwise.
    padding = " ".join(["__typename"] * (MAX_TOKENS + 10))
    return (
        "mutation Long($input: PublishEventInput!) {"
        f" publishEvent(input: $input) {{ event {{ id }} {padding} }} }}"
    )


def fragment_bomb(fragments: int) -> str:
    """F0 selects __typename; each Fn spreads F(n-1) twice: 2^n fields in a few bytes each."""
    definitions = ["fragment F0 on Query { __typename }"] + [
        f"fragment F{n} on Query {{ ...F{n - 1} ...F{n - 1} }}" for n in range(1, fragments + 1)
    ]
    return " ".join(definitions) + f" {{ ...F{fragments} }}"


def publish_input(company_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"input": {"companyId": company_id, "webhook": "ORDER_STATUS", "payload": payload}}


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def count_rows(services: Services, table: str) -> int:
    """Rows in a table of the test database, seen by its owner (no row-level security)."""
    assert table in ("events", "deliveries", "subscriptions")
    async with services.db.pool.connection() as connection:
        cursor = await connection.execute(f"SELECT count(*) FROM {table}")
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


@asynccontextmanager
async def client_for(
    settings: Settings, services: Services, *, address: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on an app built with other settings, over the test's services."""
    app = build_app(settings, services=services)
    transport = httpx.ASGITransport(app=app, client=(address, 123))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def production(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path, env="production")


# -- query shape limits ------------------------------------------------------------


async def test_a_query_deeper_than_the_limit_is_refused_unexecuted(
    http: httpx.AsyncClient, services: Services, tenants: Tenants
) -> None:
    before = await count_rows(services, "events")

    response = await http.post(
        "/graphql",
        json={
            "query": DEEP_PUBLISH,
            "variables": publish_input(tenants.a, order_status_payload(n=1)),
        },
        headers=bearer(tenants.publisher),
    )

    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"] == f"'Deep' exceeds maximum operation depth of {MAX_DEPTH}"
    assert error["extensions"] == {"code": DEPTH_CODE, "depth": 12, "limit": MAX_DEPTH}
    assert await count_rows(services, "events") == before


async def test_too_many_aliases_are_refused_unexecuted(
    http: httpx.AsyncClient, services: Services, tenants: Tenants
) -> None:
    before = await count_rows(services, "events")

    response = await http.post(
        "/graphql",
        json={
            "query": aliased_publishes(MAX_ALIASES + 1),
            "variables": publish_input(tenants.a, order_status_payload(n=1)),
        },
        headers=bearer(tenants.publisher),
    )

    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"] == f"{MAX_ALIASES + 1} aliases found. Allowed: {MAX_ALIASES}"
    assert error["extensions"]["code"] == ALIASES_CODE
    assert await count_rows(services, "events") == before


async def test_aliases_up_to_the_limit_are_fine(
    http: httpx.AsyncClient, services: Services, tenants: Tenants
) -> None:
    before = await count_rows(services, "events")

    response = await http.post(
        "/graphql",
        json={
            "query": aliased_publishes(3),
            "variables": publish_input(tenants.a, order_status_payload(n=1)),
        },
        headers=bearer(tenants.publisher),
    )

    assert "errors" not in response.json()
    assert await count_rows(services, "events") == before + 3


async def test_too_many_tokens_are_refused_unexecuted(
    http: httpx.AsyncClient, services: Services, tenants: Tenants
) -> None:
    before = await count_rows(services, "events")

    response = await http.post(
        "/graphql",
        json={
            "query": publish_with_many_tokens(),
            "variables": publish_input(tenants.a, order_status_payload(n=1)),
        },
        headers=bearer(tenants.publisher),
    )

    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert f"more than {MAX_TOKENS} tokens" in error["message"]
    assert await count_rows(services, "events") == before


async def test_a_batch_of_operations_is_refused_unexecuted(
    http: httpx.AsyncClient, services: Services, tenants: Tenants
) -> None:
    before = await count_rows(services, "events")
    operation = {"query": PUBLISH, "variables": publish_input(tenants.a, order_status_payload(n=1))}

    response = await http.post(
        "/graphql", json=[operation, operation], headers=bearer(tenants.publisher)
    )

    assert response.status_code == 400
    assert "Batching is not enabled" in response.text
    assert await count_rows(services, "events") == before


async def test_a_query_over_the_cost_limit_is_refused_with_its_cost_and_the_limit(
    api: GraphQLClient, settings: Settings, tenants: Tenants
) -> None:
    body = await api.post(NESTED_PAGES, key=tenants.key_a)

    assert body["data"] is None
    [error] = body["errors"]
    cost = error["extensions"]["cost"]
    assert cost > 15 * 100**3  # 15,000,000 deliveries, and more fields
    assert error["extensions"] == {
        "code": COST_CODE,
        "cost": cost,
        "limit": settings.max_query_cost,
    }
    assert error["message"].startswith(
        f"'Nested' may resolve up to {cost} fields, over the limit of {settings.max_query_cost}"
    )


async def test_a_fragment_bomb_without_a_key_is_refused_for_its_cost(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    response = await http.post("/graphql", json={"query": fragment_bomb(40)})

    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["extensions"] == {
        "code": COST_CODE,
        "cost": 2**40,
        "limit": settings.max_query_cost,
    }


async def test_the_cost_limit_is_a_setting(
    database_url: str, tmp_path: Path, services: Services, tenants: Tenants
) -> None:
    strict = make_settings(database_url, tmp_path, max_query_cost=100)
    async with client_for(strict, services) as client:
        small = await client.post("/graphql", json={"query": VIEWER}, headers=bearer(tenants.key_a))
        page = await client.post(
            "/graphql", json={"query": DELIVERIES}, headers=bearer(tenants.key_a)
        )

    assert small.json() == {"data": {"viewer": {"role": "COMPANY"}}}
    [error] = page.json()["errors"]
    assert error["extensions"] == {"code": COST_CODE, "cost": 152, "limit": 100}


async def test_several_operations_need_an_operation_name(
    api: GraphQLClient, tenants: Tenants
) -> None:
    unnamed = await api.post(TWO_OPERATIONS, key=tenants.key_a)
    response = await api.http.post(
        "/graphql",
        json={"query": TWO_OPERATIONS, "operationName": "B"},
        headers=bearer(tenants.key_a),
    )

    assert unnamed["data"] is None
    assert [error["message"] for error in unnamed["errors"]] == [OPERATION_NAME_REQUIRED]
    assert response.json() == {"data": {"b": {"role": "COMPANY"}}}


async def test_production_validation_errors_suggest_no_field_names(
    production: Settings, http: httpx.AsyncClient, services: Services, tenants: Tenants
) -> None:
    development = await http.post(
        "/graphql", json={"query": MISSPELT}, headers=bearer(tenants.key_a)
    )
    async with client_for(production, services) as client:
        response = await client.post(
            "/graphql", json={"query": MISSPELT}, headers=bearer(tenants.key_a)
        )

    assert "Did you mean 'role'?" in development.json()["errors"][0]["message"]
    [error] = response.json()["errors"]
    assert error["message"] == "Cannot query field 'rol' on type 'Viewer'."


# -- sizes ---------------------------------------------------------------------------


async def test_a_body_over_the_cap_gets_413_and_nothing_is_stored(
    http: httpx.AsyncClient, services: Services, settings: Settings, tenants: Tenants
) -> None:
    cap = max(settings.max_request_bytes, settings.max_payload_bytes + 64 * 1024)
    before = await count_rows(services, "events")

    response = await http.post(
        "/graphql",
        json={
            "query": PUBLISH,
            "variables": publish_input(tenants.a, order_status_payload(x="a" * (cap + 1))),
        },
        headers=bearer(tenants.publisher),
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "TOO_LARGE"
    assert error["message"] == f"Request body exceeds {cap} bytes."
    assert await count_rows(services, "events") == before


async def test_a_streamed_body_over_the_cap_gets_413_and_nothing_is_stored(
    http: httpx.AsyncClient, services: Services, settings: Settings, tenants: Tenants
) -> None:
    # Chunked, so no Content-Length announces the size: the cap is counted while reading.
    cap = max(settings.max_request_bytes, settings.max_payload_bytes + 64 * 1024)
    document = json.dumps(
        {
            "query": PUBLISH,
            "variables": publish_input(tenants.a, order_status_payload(x="a" * (cap + 1))),
        }
    ).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(document), 64 * 1024):
            yield document[start : start + 64 * 1024]

    before = await count_rows(services, "events")

    response = await http.post(
        "/graphql",
        content=chunks(),
        headers={**bearer(tenants.publisher), "content-type": "application/json"},
    )

    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "TOO_LARGE"
    assert await count_rows(services, "events") == before


async def test_a_payload_over_its_limit_but_under_the_body_cap_is_a_user_error(
    api: GraphQLClient, services: Services, settings: Settings, tenants: Tenants
) -> None:
    before = await count_rows(services, "events")
    payload = order_status_payload(x="a" * (settings.max_payload_bytes + 100))

    data = await api.data(PUBLISH, publish_input(tenants.a, payload), key=tenants.publisher)

    assert data["publishEvent"]["event"] is None
    [error] = data["publishEvent"]["userErrors"]
    assert error["code"] == "TOO_LARGE"
    assert error["field"] == ["input", "payload"]
    assert f"the limit is {settings.max_payload_bytes} bytes" in error["message"]
    assert await count_rows(services, "events") == before


# -- production: no introspection, no GraphiQL -------------------------------------------


@pytest.mark.parametrize("query", [INTROSPECTION, TYPE_INTROSPECTION])
async def test_production_refuses_introspection(
    production: Settings, services: Services, tenants: Tenants, query: str
) -> None:
    async with client_for(production, services) as client:
        response = await client.post(
            "/graphql", json={"query": query}, headers=bearer(tenants.key_a)
        )

    body = response.json()
    assert body["data"] is None
    assert body["errors"]
    assert all("introspection has been disabled" in error["message"] for error in body["errors"])


async def test_production_still_answers_typename_and_normal_queries(
    production: Settings, services: Services, tenants: Tenants
) -> None:
    async with client_for(production, services) as client:
        response = await client.post(
            "/graphql",
            json={"query": "query { viewer { __typename role } }"},
            headers=bearer(tenants.key_a),
        )

    assert response.json() == {"data": {"viewer": {"__typename": "Viewer", "role": "COMPANY"}}}


async def test_production_serves_no_graphiql(production: Settings, services: Services) -> None:
    async with client_for(production, services) as client:
        response = await client.get("/graphql", headers={"accept": "text/html"})

    assert response.status_code == 404
    assert "graphiql" not in response.text.lower()


async def test_development_serves_graphiql_and_answers_introspection(
    http: httpx.AsyncClient, tenants: Tenants
) -> None:
    page = await http.get("/graphql", headers={"accept": "text/html"})
    introspection = await http.post(
        "/graphql", json={"query": INTROSPECTION}, headers=bearer(tenants.key_a)
    )

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "graphiql" in page.text.lower()
    body = introspection.json()
    assert "errors" not in body
    assert body["data"]["__schema"]["queryType"] == {"name": "Query"}


# -- masked unexpected errors ----------------------------------------------------------


@pytest.fixture
def broken_list_deliveries(monkeypatch: pytest.MonkeyPatch) -> None:
    async def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom secret")

    monkeypatch.setattr(deliveries, "list_deliveries", explode)


@pytest.mark.usefixtures("broken_list_deliveries")
async def test_an_unexpected_exception_is_masked_with_a_logged_correlation_id(
    api: GraphQLClient, tenants: Tenants, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    body = await api.post(DELIVERIES, key=tenants.key_a)

    [error] = body["errors"]
    assert error["message"].startswith(UNEXPECTED)
    assert "boom" not in json.dumps(body)
    correlation_id = error["extensions"]["correlationId"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert correlation_id in error["message"]
    assert error["path"] == ["deliveries"]
    [record] = [r for r in caplog.records if getattr(r, "correlation_id", None) == correlation_id]
    assert record.levelno == logging.ERROR
    assert correlation_id in record.getMessage()
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "boom secret"


@pytest.mark.usefixtures("broken_list_deliveries")
async def test_each_unexpected_error_gets_its_own_correlation_id(
    api: GraphQLClient, tenants: Tenants
) -> None:
    first = await api.post(DELIVERIES, key=tenants.key_a)
    second = await api.post(DELIVERIES, key=tenants.key_a)

    ids = {body["errors"][0]["extensions"]["correlationId"] for body in (first, second)}
    assert len(ids) == 2


async def test_validation_errors_are_not_masked(api: GraphQLClient, tenants: Tenants) -> None:
    body = await api.post(UNKNOWN_FIELD, key=tenants.key_a)

    [error] = body["errors"]
    assert error["message"] == "Cannot query field 'secretAdminField' on type 'Viewer'."
    assert "correlationId" not in (error.get("extensions") or {})


async def test_permission_errors_are_not_masked(api: GraphQLClient, tenants: Tenants) -> None:
    forbidden = await api.post(SUBSCRIPTIONS, key=tenants.publisher)
    unauthenticated = await api.post(VIEWER, key=None)

    [error] = forbidden["errors"]
    assert error["extensions"] == {"code": "FORBIDDEN"}
    assert "COMPANY key" in error["message"]
    [error] = unauthenticated["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}


async def test_user_errors_are_not_masked(api: GraphQLClient, tenants: Tenants) -> None:
    data = await api.data(
        CREATE,
        {
            "input": {
                "webhook": "NO_SUCH_WEBHOOK",
                "callbackUrl": "ftp://example.com/hook",
                "notificationEmail": "not an email",
            }
        },
        key=tenants.key_a,
    )

    errors = data["createWebhookSubscription"]["userErrors"]
    assert {tuple(error["field"]): error["code"] for error in errors} == {
        ("input", "webhook"): "UNKNOWN_WEBHOOK",
        ("input", "callbackUrl"): "INVALID",
        ("input", "notificationEmail"): "INVALID",
    }


# -- rate limit -------------------------------------------------------------------------


@pytest.fixture
def rate_limited(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path, rate_limit_per_second=1.0, rate_limit_burst=3)


async def test_the_fourth_quick_request_is_rate_limited_and_another_key_is_not(
    rate_limited: Settings, services: Services, tenants: Tenants
) -> None:
    async with client_for(rate_limited, services) as client:
        allowed = [
            await client.post("/graphql", json={"query": VIEWER}, headers=bearer(tenants.key_a))
            for _ in range(3)
        ]
        refused = await client.post(
            "/graphql", json={"query": VIEWER}, headers=bearer(tenants.key_a)
        )
        other = await client.post("/graphql", json={"query": VIEWER}, headers=bearer(tenants.key_b))

    assert [response.status_code for response in allowed] == [200, 200, 200]
    assert all("errors" not in response.json() for response in allowed)
    assert refused.status_code == 429
    [error] = refused.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["retryAfter"] >= 1
    assert int(refused.headers["retry-after"]) >= 1
    assert other.status_code == 200
    assert other.json() == {"data": {"viewer": {"role": "COMPANY"}}}


@pytest.fixture
def app_with_limits(database_url: str, tmp_path: Path, services: Services) -> Any:
    """One app (one set of buckets) and clients on it from any address."""
    settings = make_settings(
        database_url,
        tmp_path,
        rate_limit_per_second=0.01,
        rate_limit_burst=3,
        rate_limit_unauthenticated_per_second=0.01,
        rate_limit_unauthenticated_burst=2,
    )
    app = build_app(settings, services=services)

    def client(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 123))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    return client


def forged_with_prefix_of(key: str) -> str:
    forged, forged_prefix = generate_key()
    return key[: len(forged_prefix)] + forged[len(forged_prefix) :]


async def statuses(client: httpx.AsyncClient, key: str, count: int) -> list[int]:
    return [
        (await client.post("/graphql", json={"query": VIEWER}, headers=bearer(key))).status_code
        for _ in range(count)
    ]


async def test_forged_keys_are_limited_per_address_and_a_real_key_elsewhere_is_not(
    app_with_limits: Any, tenants: Tenants
) -> None:
    # Given an attacker forging well-formed keys, among them one with key A's public prefix
    forged = [generate_key()[0] for _ in range(4)] + [forged_with_prefix_of(tenants.key_a)] * 4
    async with app_with_limits("198.51.100.66") as attacker:
        attacked = [
            (await attacker.post("/graphql", json={"query": VIEWER}, headers=bearer(key)))
            for key in forged
        ]
        # (key A from the attacker's address is refused too: the address is what is limited)
        from_attacker = await statuses(attacker, tenants.key_a, 1)
    # When key A is used from its owner's address
    async with app_with_limits("192.0.2.10") as owner:
        genuine = await statuses(owner, tenants.key_a, 4)

    # Then the forgeries got two unauthenticated answers, then 429s
    assert [response.status_code for response in attacked] == [200, 200] + [429] * 6
    assert attacked[0].json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert attacked[-1].json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert from_attacker == [429]
    # and key A's own bucket is whole: its burst of 3, then 429
    assert genuine == [200, 200, 200, 429]


async def test_two_authorization_headers_are_refused_and_nothing_runs(
    services: Services, settings: Settings, tenants: Tenants
) -> None:
    before = await count_rows(services, "events")
    document = {"query": PUBLISH, "variables": publish_input(tenants.a, order_status_payload(n=1))}
    async with client_for(settings, services) as client:
        responses = [
            await client.post(
                "/graphql",
                json=document,
                headers=[("authorization", first), ("authorization", second)],
            )
            for first, second in (
                (f"Bearer {tenants.publisher}", "Bearer pwk_forged"),
                ("Bearer pwk_forged", f"Bearer {tenants.publisher}"),
                (f"Bearer {tenants.publisher}", f"Bearer {tenants.publisher}"),
            )
        ]

    assert [response.status_code for response in responses] == [400, 400, 400]
    [error] = responses[0].json()["errors"]
    assert error == {
        "message": "Send one Authorization header, not several.",
        "extensions": {"code": "BAD_REQUEST"},
    }
    assert await count_rows(services, "events") == before
