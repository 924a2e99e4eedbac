"""The domain's user errors as the API reports them: GraphQL paths and wording."""

from __future__ import annotations

import pytest

from app.core.errors import Field, JsonKey, UserError, UserErrorCode, missing
from app.domain.webhook_types import unknown_webhook
from schema.errors import FieldPaths, graphql_message, graphql_path
from schema.mutation import (
    DELIVERY_BY_DELIVERY_ID,
    SUBSCRIPTION_BY_ID,
    SUBSCRIPTION_BY_SUBSCRIPTION_ID,
    SUBSCRIPTION_IN_INPUT,
    WEBHOOK_IN_INPUT,
)


@pytest.mark.parametrize(
    ("field", "paths", "path"),
    [
        (("callback_url",), WEBHOOK_IN_INPUT, ["input", "callbackUrl"]),
        (("webhook_key",), WEBHOOK_IN_INPUT, ["input", "webhook"]),
        (("idempotency_key",), WEBHOOK_IN_INPUT, ["input", "idempotencyKey"]),
        (("api_key_params",), WEBHOOK_IN_INPUT, ["input", "apiKeyParams"]),
        (("api_key_params", 2, "name"), WEBHOOK_IN_INPUT, ["input", "apiKeyParams", "2", "name"]),
        (("subscription_id",), SUBSCRIPTION_IN_INPUT, ["input", "id"]),
        (("subscription_id",), SUBSCRIPTION_BY_ID, ["id"]),
        (("subscription_id",), SUBSCRIPTION_BY_SUBSCRIPTION_ID, ["subscriptionId"]),
        (("delivery_id",), DELIVERY_BY_DELIVERY_ID, ["deliveryId"]),
        # Keys inside a payload are the publisher's: kept as they are, not camelCased.
        (
            ("payload", JsonKey("property_info"), JsonKey("postal_code")),
            WEBHOOK_IN_INPUT,
            ["input", "payload", "property_info", "postal_code"],
        ),
        (
            ("payload", JsonKey("appointments"), 0, JsonKey("start_datetime")),
            WEBHOOK_IN_INPUT,
            ["input", "payload", "appointments", "0", "start_datetime"],
        ),
    ],
)
def test_a_domain_field_is_reported_at_its_graphql_path(
    field: Field, paths: FieldPaths, path: list[str]
) -> None:
    assert graphql_path(field, paths) == path


def test_an_unknown_webhook_says_where_the_keys_are() -> None:
    # Given the domain's error, which knows nothing of the API
    error = unknown_webhook("ORDER_SHIPPED")
    assert "webhookTypes" not in error.message

    # Then the API's message points at the query listing the keys
    assert graphql_message(error) == (
        "Unknown webhook 'ORDER_SHIPPED'; see webhookTypes for the keys."
    )


def test_other_messages_are_the_domains() -> None:
    error = UserError(
        ("subject",), "The subject has at most 200 characters.", UserErrorCode.TOO_LARGE
    )

    assert graphql_message(error) == error.message
    assert graphql_message(missing(("company_id",), "company")) == "No company with this id."
