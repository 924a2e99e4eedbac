"""Odd and hostile HTTP requests get a 4xx with a GraphQL-shaped error, never a 500.

Bodies nested deeper than the JSON bound or with huge numbers, bodies that are not a
JSON object or not UTF-8, a subscription sent over HTTP: each is refused before any
GraphQL runs, with one clear message, and without a traceback in the log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from app.core.settings import Settings
from app.store.services import Services
from app.web.request_json import MAX_DEPTH, MAX_NUMBER_CHARACTERS
from app.web.server import build_app
from tests.payloads import order_status_payload
from tests.service import Tenants

VIEWER = "query { viewer { role } }"
PUBLISH = """
mutation Publish($input: PublishEventInput!) {
  publishEvent(input: $input) { event { id } userErrors { field code message } }
}
"""
DELIVERY_UPDATES = "subscription { deliveryUpdates { id status } }"


def publish_body(company_id: str, payload: str) -> str:
    """A publishEvent request whose payload is the JSON text ``payload``, written out by
    hand (``json.dumps`` cannot write what these tests send)."""
    return (
        f'{{"query": {json.dumps(PUBLISH)}, "variables": {{"input": {{"companyId":'
        f' "{company_id}", "webhook": "ORDER_STATUS", "payload": {payload}}}}}}}'
    )


def order_status_with(member: str) -> str:
    """A valid ORDER_STATUS payload as JSON text, with ``member`` (``"name": value``, also
    written out by hand) added as its last field."""
    return json.dumps(order_status_payload())[:-1] + ", " + member + "}"


def nested(levels: int) -> str:
    """An array ``levels`` deep."""
    return "[" * levels + "]" * levels


# The request body, "variables" and "input" are three levels around the payload, and the
# payload is one more around its fields.
AROUND_PAYLOAD = 3
AROUND_FIELD = AROUND_PAYLOAD + 1


async def events(services: Services) -> int:
    async with services.db.pool.connection() as connection:
        cursor = await connection.execute("SELECT count(*) FROM events")
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
async def client(settings: Settings, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app that answers a crash with a 500 instead of raising it."""
    app = build_app(settings, services=services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def post_raw(client: httpx.AsyncClient, body: bytes | str, key: str) -> httpx.Response:
    return await client.post(
        "/graphql",
        content=body,
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )


def refusal(response: httpx.Response) -> str:
    """The message of a request refused with 400 and a GraphQL-shaped error."""
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_REQUEST"}
    message: str = error["message"]
    return message


def assert_one_line(caplog: pytest.LogCaptureFixture) -> None:
    """The service logged the refusal as one INFO line: no ERROR, no traceback."""
    [record] = [record for record in caplog.records if record.name != "httpx"]
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    assert record.getMessage().startswith("HTTP request refused (400): ")
    assert "\n" not in record.getMessage()


# -- bounded JSON ---------------------------------------------------------------------


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 500, 990, 5000])
async def test_variables_nested_too_deeply_are_refused_with_one_clear_error(
    client: httpx.AsyncClient,
    tenants: Tenants,
    services: Services,
    caplog: pytest.LogCaptureFixture,
    levels: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    # Given a body nested `levels` deep, in a field of its payload
    body = publish_body(tenants.a, order_status_with('"deep": ' + nested(levels - AROUND_FIELD)))

    # When it is posted
    response = await post_raw(client, body, tenants.publisher)

    # Then it is refused before GraphQL, nothing is published, nothing logged as an error
    assert refusal(response) == f"JSON nests deeper than {MAX_DEPTH} levels."
    assert await events(services) == 0
    assert_one_line(caplog)


async def test_variables_nested_up_to_the_bound_are_fine(
    client: httpx.AsyncClient, tenants: Tenants, services: Services
) -> None:
    body = publish_body(tenants.a, order_status_with('"deep": ' + nested(MAX_DEPTH - AROUND_FIELD)))

    response = await post_raw(client, body, tenants.publisher)

    assert response.status_code == 200
    assert response.json()["data"]["publishEvent"]["userErrors"] == []
    assert await events(services) == 1


@pytest.mark.parametrize("digits", [MAX_NUMBER_CHARACTERS + 1, 4301])
async def test_a_huge_number_is_refused_and_nothing_is_published(
    client: httpx.AsyncClient,
    tenants: Tenants,
    services: Services,
    caplog: pytest.LogCaptureFixture,
    digits: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    body = publish_body(tenants.a, order_status_with('"n": ' + "9" * digits))

    response = await post_raw(client, body, tenants.publisher)

    assert refusal(response) == f"A number has more than {MAX_NUMBER_CHARACTERS} characters."
    assert await events(services) == 0
    assert_one_line(caplog)


@pytest.mark.parametrize("number", ["1e400", "NaN", "-Infinity"])
async def test_numbers_outside_json_are_refused(
    client: httpx.AsyncClient, tenants: Tenants, number: str
) -> None:
    body = publish_body(tenants.a, order_status_with(f'"n": [{number}]'))

    response = await post_raw(client, body, tenants.publisher)

    assert refusal(response)


# -- bodies that are not a GraphQL request ------------------------------------------------


@pytest.mark.parametrize("body", ["1", '"query { viewer { role } }"', "null", "true", "2.5"])
async def test_a_body_that_is_a_bare_json_value_is_refused(
    client: httpx.AsyncClient, tenants: Tenants, caplog: pytest.LogCaptureFixture, body: str
) -> None:
    caplog.set_level(logging.DEBUG)

    response = await post_raw(client, body, tenants.key_a)

    assert refusal(response) == 'Expected a JSON object: {"query": "...", "variables": {...}}.'
    assert_one_line(caplog)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'\xff\xfe{\x00"\x00q\x00"\x00:\x001\x00}\x00', id="utf-16"),
        pytest.param(b'{"query": "query { viewer { role } }", "x": "\xe9"}', id="latin-1"),
    ],
)
async def test_a_body_that_is_not_utf8_is_refused(
    client: httpx.AsyncClient, tenants: Tenants, body: bytes
) -> None:
    response = await post_raw(client, body, tenants.key_a)

    assert refusal(response) == "The body is not UTF-8 text."


async def test_a_body_that_is_not_json_gets_the_same_error_shape(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    response = await post_raw(client, '{"query": ', tenants.key_a)

    assert refusal(response).startswith("The body is not valid JSON")


async def test_a_subscription_over_http_is_refused_with_where_to_send_it(
    client: httpx.AsyncClient, tenants: Tenants, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    response = await client.post(
        "/graphql",
        json={"query": DELIVERY_UPDATES},
        headers={"authorization": f"Bearer {tenants.key_a}"},
    )

    message = refusal(response)
    assert "websocket" in message
    assert "graphql-transport-ws" in message
    assert_one_line(caplog)


async def test_queries_over_http_still_run(client: httpx.AsyncClient, tenants: Tenants) -> None:
    response = await client.post(
        "/graphql", json={"query": VIEWER}, headers={"authorization": f"Bearer {tenants.key_a}"}
    )

    assert response.json() == {"data": {"viewer": {"role": "COMPANY"}}}


# -- the root ---------------------------------------------------------------------------


async def test_the_root_redirects_to_graphql(client: httpx.AsyncClient) -> None:
    response = await client.get("/")

    assert response.status_code in (302, 307)
    assert response.headers["location"] == "/graphql"


@pytest.mark.parametrize("member", ['"note": "\\ud800"', '"\\udfff": 1'])
async def test_an_unpaired_surrogate_is_refused_as_bad_input_and_nothing_is_published(
    client: httpx.AsyncClient,
    tenants: Tenants,
    services: Services,
    caplog: pytest.LogCaptureFixture,
    member: str,
) -> None:
    # Given a payload whose JSON escapes decode to a lone surrogate (no UTF-8 encodes it)
    caplog.set_level(logging.DEBUG)
    body = publish_body(tenants.a, order_status_with(member))

    # When it is published
    response = await post_raw(client, body, tenants.publisher)

    # Then the operation is refused as bad input, not an unexpected error
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert "unpaired surrogate" in error["message"]
    assert await events(services) == 0
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
