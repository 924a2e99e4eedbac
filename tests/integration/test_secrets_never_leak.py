"""No secret ever shows up where people or logs can read it, over a full run.

A subscription with API key parameters and custom headers is created through GraphQL, events are
published, the real worker fails to deliver them to a receiver that always answers 500,
the failure email goes out through a real SMTP server, the signing secret is rotated,
a failed delivery is redelivered (signed with both secrets), and a mutation carrying a
new API key value and a new header value crashes unexpectedly, once as variables and once
written inline; documents with inline API key and header values fail (a typo, no key,
the wrong role). Then every secret (the signing secrets shown once, each API key
parameter and header value, inline ones too, the COMPANY and PUBLISHER keys, the master
key) is searched for in everything a person or a log can read: every log record of every
logger at DEBUG, every GraphQL response after the one-time display, every row of every
table, and the raw email. Only the receiver sees API key values (in its query string)
and header values, which is what they are for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import graphql
import pytest

from app.core.settings import Settings
from app.domain import subscriptions
from app.store.services import Services
from schema.masking import UNEXPECTED
from schema.root import build_schema
from tests.payloads import order_status_payload
from tests.receivers import Receiver, respond
from tests.service import GraphQLClient, Tenants, make_settings
from tests.smtp import SmtpTestServer

API_KEY_VALUE = "apikey-VALUE-0123456789"
API_TOKEN_VALUE = "apikey-TOKEN-9876543210"
NEW_API_KEY_VALUE = "apikey-NEWVALUE-5555555555"
INLINE_API_KEY_VALUE = "apikey-INLINE-7777777777"
INLINE_CRASH_VALUE = "apikey-INLINECRASH-3333333333"
BEARER_TOKEN = "hdr-BEARER-0123456789"  # sent as "Bearer <token>": the token is the secret
HEADER_VALUE = "hdr-TOKEN-9876543210"
NEW_HEADER_VALUE = "hdr-NEWVALUE-5555555555"
INLINE_HEADER_VALUE = "hdr-INLINE-7777777777"
INLINE_CRASH_HEADER_VALUE = "hdr-INLINECRASH-3333333333"

CREATE = """
mutation Create($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) {
    subscription { id callbackUrl apiKeyParams { name valueHint } headers { name valueHint } }
    signingSecret
    userErrors { field code message }
  }
}
"""

PUBLISH = """
mutation Publish($input: PublishEventInput!) {
  publishEvent(input: $input) {
    event { id deliveries { id status } }
    userErrors { field code message }
  }
}
"""

ROTATE = """
mutation Rotate($id: ID!) {
  rotateWebhookSubscriptionSecret(id: $id) {
    subscription { id apiKeyParams { name valueHint } }
    signingSecret
    userErrors { field code message }
  }
}
"""

REDELIVER = """
mutation Redeliver($id: ID!) {
  redeliver(deliveryId: $id) {
    delivery { id status cycle }
    userErrors { field code message }
  }
}
"""

UPDATE = """
mutation Update($input: UpdateWebhookSubscriptionInput!) {
  updateWebhookSubscription(input: $input) {
    subscription { id }
    userErrors { field code message }
  }
}
"""

# The README's own example: an API key parameter value written inline in the document.
CREATE_INLINE = f"""
mutation {{
  createWebhookSubscription(input: {{
    webhook: "ORDER_STATUS"
    callbackUrl: "https://hooks.acme.example/planomatic"
    notificationEmail: "ops@acme.example"
    apiKeyParams: [{{name: "api_key", value: "{INLINE_API_KEY_VALUE}"}}]
    headers: [{{name: "X-Api-Token", value: "{INLINE_HEADER_VALUE}"}}]
  }}) {{
    subscription {{ id callbackUrl apiKeyParams {{ name valueHint }} isActive }}
    signingSecret
    userErrors {{ field message code }}
  }}
}}
"""
CREATE_INLINE_WITH_TYPO = CREATE_INLINE.replace("isActive", "isActiv")

UPDATE_INLINE = """
mutation {
  updateWebhookSubscription(input: {
    id: "%s", apiKeyParams: [{name: "api_key", value: "%s"}]
    headers: [{name: "X-Api-Token", value: "%s"}]
  }) {
    subscription { id }
  }
}
"""

DELIVERY_STATUSES = "query { deliveries { nodes { id status cycle } } }"

SUBSCRIPTION_FIELDS = """
  id callbackUrl notificationEmail isActive description createdAt updatedAt filter
  ordering
  apiKeyParams { name valueHint }
  headers { name valueHint }
  maxDeliveriesPerSecond
  webhook { key name }
"""

ATTEMPT_FIELDS = """
  number cycle startedAt durationMs responseStatus responseBody error succeeded url
"""
# Read once, under the listing of deliveries (everywhere, it would be over the cost limit).
REQUEST_FIELDS = "request { url headers { name value } body }"

DELIVERY_FIELDS = f"""
  id webhookId status cycle attemptCount maxAttempts nextAttemptAt lastAttemptAt
  lastResponseStatus createdAt completedAt
  sequence
  attempts {{ {ATTEMPT_FIELDS} }}
"""

# Every readable field of everything the company can list (pages of 10: the run makes
# fewer rows, and larger pages of everything nested would be over the query cost limit).
COMPANY_LISTINGS = f"""
query {{
  viewer {{ role company {{ id name }} }}
  webhookSubscriptions(first: 10) {{
    nodes {{
      {SUBSCRIPTION_FIELDS}
      deliveries(first: 10) {{ nodes {{ {DELIVERY_FIELDS} }} }}
    }}
  }}
  events(first: 10) {{
    nodes {{
      id subject payload idempotencyKey isTest createdAt
      company {{ id name }} webhook {{ key }}
      deliveries {{ {DELIVERY_FIELDS} subscription {{ {SUBSCRIPTION_FIELDS} }} }}
    }}
  }}
  deliveries(first: 10) {{
    nodes {{
      {DELIVERY_FIELDS}
      event {{ id payload }}
      subscription {{ {SUBSCRIPTION_FIELDS} }}
    }}
  }}
}}
"""

# The requests sent, in a listing of their own: a body counts 400 in the query cost.
COMPANY_REQUESTS = f"""
query {{ deliveries(first: 10) {{ nodes {{ attempts {{ {REQUEST_FIELDS} }} }} }} }}
"""

SUBSCRIPTION_BY_ID = f"""
query One($id: ID!) {{ webhookSubscription(id: $id) {{ {SUBSCRIPTION_FIELDS} }} }}
"""

# Everything the publisher may read (its rights: test_api_publisher_rights.py)...
PUBLISHER_LISTINGS = f"""
query {{
  viewer {{ role }}
  events(first: 10) {{ nodes {{ id payload company {{ id }} deliveries {{ {DELIVERY_FIELDS} }} }} }}
  deliveries(first: 10) {{
    nodes {{ {DELIVERY_FIELDS} subscription {{ id isActive createdAt updatedAt }} }}
  }}
}}
"""
# ...and what it is refused (its errors must not quote anything either).
PUBLISHER_REFUSED = f"""
query {{ deliveries {{ nodes {{ subscription {{ {SUBSCRIPTION_FIELDS} }} }} }} }}
"""


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp: SmtpTestServer) -> Settings:
    return make_settings(
        database_url,
        tmp_path,
        max_attempts=2,
        retry_interval_seconds=0.3,
        smtp_url=smtp.url,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    # Failing with a body of its own: the attempt records keep the response excerpt.
    with Receiver(default=respond(500, "internal trouble")) as failing:
        yield failing


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog at DEBUG for every logger, including any that set a level or stop propagating."""
    caplog.set_level(logging.DEBUG)
    detached: list[logging.Logger] = []
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger):
            continue
        if logger.level != logging.NOTSET:
            caplog.set_level(logging.DEBUG, logger=name)
        if not logger.propagate:
            logger.addHandler(caplog.handler)
            detached.append(logger)
    yield caplog
    for logger in detached:
        logger.removeHandler(caplog.handler)


class RecordingClient:
    """The GraphQL client, keeping every response body it got."""

    def __init__(self, api: GraphQLClient) -> None:
        self.api = api
        self.bodies: list[str] = []

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, *, key: str
    ) -> dict[str, Any]:
        body = await self.api.post(query, variables, key=key)
        self.bodies.append(json.dumps(body, ensure_ascii=False))
        return body

    async def data(
        self, query: str, variables: dict[str, Any] | None = None, *, key: str
    ) -> dict[str, Any]:
        body = await self.post(query, variables, key=key)
        assert not body.get("errors"), body["errors"]
        data: dict[str, Any] = body["data"]
        return data


async def wait_until_all(
    client: RecordingClient, key: str, status: str, count: int, *, cycle: int = 1
) -> None:
    deadline = time.monotonic() + 15
    while True:
        data = await client.data(DELIVERY_STATUSES, key=key)
        nodes = data["deliveries"]["nodes"]
        done = [n for n in nodes if n["status"] == status and n["cycle"] >= cycle]
        if len(nodes) == count and len(done) == count:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"deliveries not all {status} in time: {nodes}")
        await asyncio.sleep(0.1)


async def table_dumps(services: Services) -> dict[str, str]:
    """Every row of every table of ours and of the queue, as JSON text, by table."""
    dumps: dict[str, str] = {}
    async with services.db.pool.connection() as connection:
        cursor = await connection.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
        tables = [(schema, name) for schema, name in await cursor.fetchall()]
        for schema, name in tables:
            cursor = await connection.execute(
                f'SELECT coalesce(json_agg(t)::text, \'\') FROM "{schema}"."{name}" t'
            )
            row = await cursor.fetchone()
            assert row is not None
            dumps[name] = row[0]
        await connection.rollback()
    return dumps


def forms(secret: str) -> set[str]:
    """The ways a secret could be written out: as is, URL-encoded, without its prefix."""
    found = {secret, quote(secret, safe=""), quote_plus(secret)}
    if secret.startswith("whsec_"):
        found.add(secret.removeprefix("whsec_"))
    return found


def leaks(secrets: dict[str, str], places: dict[str, str]) -> list[str]:
    return [
        f"{secret_name} in {place}"
        for secret_name, secret in secrets.items()
        for place, text in places.items()
        if any(form in text for form in forms(secret))
    ]


@pytest.mark.usefixtures("worker")
async def test_no_secret_shows_up_in_logs_responses_database_or_email(
    api: GraphQLClient,
    tenants: Tenants,
    settings: Settings,
    services: Services,
    receiver: Receiver,
    smtp: SmtpTestServer,
    all_logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = RecordingClient(api)
    one_time: list[str] = []  # the bodies that display a signing secret, once

    # Given a subscription with two API key parameters
    body = await api.post(
        CREATE,
        {
            "input": {
                "webhook": "ORDER_STATUS",
                "callbackUrl": receiver.url_for("/hook?tenant=a"),
                "notificationEmail": "ops@example.com",
                "apiKeyParams": [
                    {"name": "api_key", "value": API_KEY_VALUE},
                    {"name": "token", "value": API_TOKEN_VALUE},
                ],
                "headers": [
                    {"name": "Authorization", "value": f"Bearer {BEARER_TOKEN}"},
                    {"name": "X-Api-Token", "value": HEADER_VALUE},
                ],
            }
        },
        key=tenants.key_a,
    )
    created = body["data"]["createWebhookSubscription"]
    assert created["userErrors"] == []
    first_secret = created["signingSecret"]
    subscription_id = created["subscription"]["id"]
    one_time.append(json.dumps(body))

    # When two events are published and every attempt fails
    for number in (1, 2):
        data = await client.data(
            PUBLISH,
            {
                "input": {
                    "companyId": tenants.a,
                    "webhook": "ORDER_STATUS",
                    "payload": order_status_payload(order_id=number),
                    "subject": f"ord_{number}",
                }
            },
            key=tenants.publisher,
        )
        assert data["publishEvent"]["userErrors"] == []
    await wait_until_all(client, tenants.key_a, "FAILED", 2)
    await smtp.wait_for_async(1, timeout=10)

    # and the secret is rotated, and a failed delivery redelivered under both secrets
    body = await api.post(ROTATE, {"id": subscription_id}, key=tenants.key_a)
    rotated = body["data"]["rotateWebhookSubscriptionSecret"]
    assert rotated["userErrors"] == []
    second_secret = rotated["signingSecret"]
    one_time.append(json.dumps(body))
    statuses = await client.data(DELIVERY_STATUSES, key=tenants.key_a)
    redelivered = statuses["deliveries"]["nodes"][0]["id"]
    data = await client.data(REDELIVER, {"id": redelivered}, key=tenants.key_a)
    assert data["redeliver"]["userErrors"] == []
    await wait_until_all(client, tenants.key_a, "FAILED", 2)
    # The redelivered cycle is reported by email too (its window is zero).
    deadline = time.monotonic() + 10
    while len(receiver.requests) < 6 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)

    # and a mutation carrying a new API key value fails unexpectedly
    async def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(subscriptions, "update_subscription", crash)
    crashed = await client.post(
        UPDATE,
        {
            "input": {
                "id": subscription_id,
                "apiKeyParams": [{"name": "api_key", "value": NEW_API_KEY_VALUE}],
                "headers": [{"name": "X-Api-Token", "value": NEW_HEADER_VALUE}],
            }
        },
        key=tenants.key_a,
    )
    assert crashed["errors"][0]["message"].startswith(UNEXPECTED)
    # and one whose API key value is written inline in the document
    crashed = await client.post(
        UPDATE_INLINE % (subscription_id, INLINE_CRASH_VALUE, INLINE_CRASH_HEADER_VALUE),
        key=tenants.key_a,
    )
    assert crashed["errors"][0]["message"].startswith(UNEXPECTED)
    monkeypatch.undo()

    # and documents with an inline API key value fail for a client's reason: a typo, no
    # key, the wrong role (their answers go back to their sender only: not searched)
    for document, key in [
        (CREATE_INLINE_WITH_TYPO, tenants.key_a),
        (CREATE_INLINE, None),
        (CREATE_INLINE, tenants.publisher),
    ]:
        failed = await api.post(document, key=key)
        assert failed["errors"] and not failed.get("data"), failed

    # and everything readable is listed
    await client.data(COMPANY_LISTINGS, key=tenants.key_a)
    await client.data(COMPANY_REQUESTS, key=tenants.key_a)
    await client.data(SUBSCRIPTION_BY_ID, {"id": subscription_id}, key=tenants.key_a)
    await client.data(PUBLISHER_LISTINGS, key=tenants.publisher)
    refused = await client.post(PUBLISHER_REFUSED, key=tenants.publisher)
    assert {error["extensions"]["code"] for error in refused["errors"]} == {"FORBIDDEN"}
    await asyncio.sleep(0.3)  # let the last email job finish its logging
    mails = smtp.messages
    dumps = await table_dumps(services)

    # Then the run did what it should: the receiver got every attempt with its keys
    requests = receiver.requests
    assert len(requests) == 6
    assert all(request.params["api_key"] == [API_KEY_VALUE] for request in requests)
    assert all(request.params["token"] == [API_TOKEN_VALUE] for request in requests)
    assert all(request.header("authorization") == f"Bearer {BEARER_TOKEN}" for request in requests)
    assert all(request.header("x-api-token") == HEADER_VALUE for request in requests)
    assert mails

    # The logs searched include what deliveries log: each attempt, retried and then
    # failed, with the URL it went to (API key values masked), and each email sent; and
    # the masked crash.
    def messages(logger: str) -> list[str]:
        return [record.getMessage() for record in all_logs.records if record.name == logger]

    sent_to = receiver.url_for("/hook?tenant=a") + "&api_key=••••&token=••••"
    attempts = messages("app.delivery.attempts")
    assert f"attempt 1 to {sent_to}: retrying (HTTP 500)" in attempts
    assert f"attempt 2 to {sent_to}: failed (HTTP 500)" in attempts
    assert "failure email sent" in messages("app.delivery.notices")
    assert messages("app.graphql")
    assert "internal trouble" in dumps["delivery_attempts"]
    assert dumps["failure_notices"]

    # and no secret is anywhere else
    secrets = {
        "first signing secret": first_secret,
        "second signing secret": second_secret,
        "api_key parameter": API_KEY_VALUE,
        "token parameter": API_TOKEN_VALUE,
        "crashed update's api_key parameter": NEW_API_KEY_VALUE,
        "inline api_key parameter of failed documents": INLINE_API_KEY_VALUE,
        "inline api_key parameter of a crashed update": INLINE_CRASH_VALUE,
        "Authorization header's token": BEARER_TOKEN,
        "X-Api-Token header": HEADER_VALUE,
        "crashed update's header": NEW_HEADER_VALUE,
        "inline header of failed documents": INLINE_HEADER_VALUE,
        "inline header of a crashed update": INLINE_CRASH_HEADER_VALUE,
        "COMPANY key": tenants.key_a,
        "other COMPANY key": tenants.key_b,
        "PUBLISHER key": tenants.publisher,
        "master key": str(settings.secret_key),
    }
    places: dict[str, str] = {}
    for index, record in enumerate(all_logs.records):
        text = all_logs.handler.format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in ("msg", "args")}
        places[f"log record {index} ({record.name}: {record.getMessage()[:60]!r})"] = text + repr(
            extras
        )
    for index, response in enumerate(client.bodies):
        places[f"GraphQL response {index}"] = response
    for table, dump in dumps.items():
        places[f"table {table}"] = dump
    for index, mail in enumerate(mails):
        # Decoded too: a transfer encoding can break a value over lines (quoted-printable)
        # or hide it entirely (base64).
        places[f"email {index}"] = mail.raw.decode("utf-8", errors="replace")
        places[f"email {index}, decoded"] = mail.text
    found = leaks(secrets, places)
    assert not found, "secrets found:\n" + "\n".join(found)

    # The one-time displays showed their own signing secret and nothing else secret.
    found = leaks(
        {name: value for name, value in secrets.items() if "signing secret" not in name},
        {f"one-time display {index}": text for index, text in enumerate(one_time)},
    )
    assert not found, "secrets found:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("type_name", "selection"),
    [
        ("WebhookSubscription", SUBSCRIPTION_FIELDS),
        ("Delivery", DELIVERY_FIELDS),
        ("DeliveryAttempt", ATTEMPT_FIELDS),
        ("AttemptRequest", REQUEST_FIELDS),
        ("HttpHeader", REQUEST_FIELDS),
        ("ApiKeyParam", SUBSCRIPTION_FIELDS),
        ("HeaderHint", SUBSCRIPTION_FIELDS),
        ("Event", COMPANY_LISTINGS),
    ],
)
def test_the_listings_read_every_leaf_field(type_name: str, selection: str) -> None:
    # A field added to these types must be added to the listings searched above.
    schema = graphql.build_schema(build_schema().as_str())
    type_ = schema.get_type(type_name)
    assert isinstance(type_, graphql.GraphQLObjectType)
    leaves = {
        name
        for name, field in type_.fields.items()
        if graphql.is_leaf_type(graphql.get_named_type(field.type))
    }

    assert leaves <= set(selection.replace("{", " ").replace("}", " ").split())
