"""What a failed GraphQL request leaves in the log.

A client's mistake (a typo, a missing key, the wrong role, a bad value) is at most one
INFO line naming codes and places: no ERROR, no traceback, and nothing of the document,
whose literals may be secrets (an API key parameter value written inline, as the README
does). An unexpected error is one ERROR record with its correlation id and traceback,
still without the document's text.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from app.domain import subscriptions
from schema import nul_characters
from schema.masking import UNEXPECTED
from tests.service import GraphQLClient, Tenants

INLINE_SECRET = "inline-SECRET-4242424242"
INLINE_HEADER_SECRET = "inline-HEADER-SECRET-6464646464"

CREATE_FIELDS = f"""
    webhook: "ORDER_STATUS"
    callbackUrl: "https://hooks.example.com/in"
    notificationEmail: "ops@example.com"
    apiKeyParams: [{{name: "api_key", value: "{INLINE_SECRET}"}}]
    headers: [{{name: "Authorization", value: "Bearer {INLINE_HEADER_SECRET}"}}]
"""

CREATE = f"""
mutation {{
  createWebhookSubscription(input: {{ {CREATE_FIELDS} }}) {{
    subscription {{ id }}
    userErrors {{ field code message }}
  }}
}}
"""

CREATE_WITH_TYPO = CREATE.replace("subscription { id }", "subscription { idd }")

# graphql-core's message itself quotes the literal: Boolean cannot represent "...".
CREATE_WITH_WRONG_TYPE = CREATE.replace("webhook:", f'isActive: "{INLINE_SECRET}" webhook:')

UPDATE = """
mutation {
  updateWebhookSubscription(input: {id: "%s", apiKeyParams: [{name: "api_key", value: "%s"}]
                                    headers: [{name: "Authorization", value: "Bearer %s"}]}) {
    subscription { id }
  }
}
"""

SUBSCRIPTION_IDS = "query { webhookSubscriptions { nodes { id } } }"


def texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every record as the log shows it, traceback included."""
    return [caplog.handler.format(record) for record in caplog.records]


def leaked(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The records showing an inline API key parameter value or header value."""
    secrets = (INLINE_SECRET, INLINE_HEADER_SECRET)
    return [text for text in texts(caplog) if any(secret in text for secret in secrets)]


def graphql_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name != "httpx"]


@pytest.mark.parametrize(
    ("document", "key_name", "code"),
    [
        pytest.param(CREATE_WITH_TYPO, "key_a", "GRAPHQL_VALIDATION_FAILED", id="typo"),
        pytest.param(CREATE_WITH_WRONG_TYPE, "key_a", "GRAPHQL_VALIDATION_FAILED", id="type"),
        pytest.param(CREATE, None, "UNAUTHENTICATED", id="missing-key"),
        pytest.param(CREATE, "publisher", "FORBIDDEN", id="wrong-role"),
    ],
)
async def test_a_client_error_is_one_info_line_without_the_document(
    api: GraphQLClient,
    tenants: Tenants,
    caplog: pytest.LogCaptureFixture,
    document: str,
    key_name: str | None,
    code: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    key = getattr(tenants, key_name) if key_name else None

    # When a document holding a secret literal fails for a client's reason
    body = await api.post(document, key=key)

    # Then the client hears why
    assert body["errors"]
    # and the log has one INFO line with the code, nothing else, and no secret
    [record] = graphql_records(caplog)
    assert record.name == "app.graphql"
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    assert code in record.getMessage()
    assert "\n" not in record.getMessage()
    assert not leaked(caplog)


async def test_the_refusal_line_names_each_error_by_code_and_place(
    api: GraphQLClient, tenants: Tenants, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.graphql")

    await api.post(SUBSCRIPTION_IDS, key=tenants.publisher)

    [record] = graphql_records(caplog)
    assert record.getMessage() == "GraphQL request refused: FORBIDDEN at webhookSubscriptions"


async def test_an_unexpected_error_is_logged_with_its_id_and_traceback_but_no_literal(
    api: GraphQLClient,
    tenants: Tenants,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    created = await api.data(CREATE, key=tenants.key_a)
    subscription_id = created["createWebhookSubscription"]["subscription"]["id"]
    caplog.clear()

    async def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(subscriptions, "update_subscription", crash)

    # When a mutation with an inline secret crashes
    body = await api.post(
        UPDATE % (subscription_id, INLINE_SECRET, INLINE_HEADER_SECRET), key=tenants.key_a
    )

    # Then the client gets the masked error, and the log one ERROR with id and traceback
    [error] = body["errors"]
    assert error["message"].startswith(UNEXPECTED)
    correlation_id = error["extensions"]["correlationId"]
    [record] = graphql_records(caplog)
    assert record.levelno == logging.ERROR
    assert getattr(record, "correlation_id", None) == correlation_id
    assert record.exc_info is not None
    assert "the database went away" in texts(caplog)[0]
    assert not leaked(caplog)


async def test_an_exception_in_an_extension_is_masked_and_logged_too(
    api: GraphQLClient,
    tenants: Tenants,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)

    def crash(value: object) -> bool:
        raise RuntimeError("internal detail")

    # Given a check that runs in an extension, before execution, and fails
    monkeypatch.setattr(nul_characters, "holds_nul", crash)

    # When a request runs through it
    body = await api.post(CREATE, key=tenants.key_a)

    # Then the client gets the masked error, not the exception's text
    [error] = body["errors"]
    assert error["message"].startswith(UNEXPECTED)
    assert "internal detail" not in str(body)
    [record] = graphql_records(caplog)
    assert getattr(record, "correlation_id", None) == error["extensions"]["correlationId"]
    assert record.exc_info is not None
    assert not leaked(caplog)
