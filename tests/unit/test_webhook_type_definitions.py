"""What an operator may put into the catalogue: the rules of a webhook type's definition."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from app.core.errors import UserErrorCode
from app.domain.webhook_types import WebhookTypeDefinition, definition_errors
from tests.catalogue import order_status_sample, order_status_schema

ORDER_STATUS = WebhookTypeDefinition(
    key="ORDER_STATUS",
    name="Order Status",
    description="Sent whenever an order changes status.",
    payload_schema=order_status_schema(),
    sample_payload=order_status_sample(),
    subject_pointer="/order_id",
    status_pointer="/order_status",
)


def errors_of(**changes: Any) -> list[tuple[tuple[str | int, ...], UserErrorCode, str]]:
    found = definition_errors(replace(ORDER_STATUS, **changes))
    return [(error.field, error.code, error.message) for error in found]


def test_the_order_status_definition_is_accepted() -> None:
    assert errors_of() == []


def test_pointers_are_optional() -> None:
    assert errors_of(subject_pointer=None, status_pointer=None) == []


@pytest.mark.parametrize("key", ["order_status", "1ORDER", "ORDER-STATUS", "", "A" * 65])
def test_a_bad_key_is_refused(key: str) -> None:
    [(field, code, message)] = errors_of(key=key)

    assert (field, code) == (("key",), UserErrorCode.INVALID)
    assert "upper-case letter" in message


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"name": " "}, ("name",), UserErrorCode.REQUIRED),
        ({"name": "N" * 101}, ("name",), UserErrorCode.TOO_LARGE),
        ({"description": ""}, ("description",), UserErrorCode.REQUIRED),
        ({"description": "bad\x00text"}, ("description",), UserErrorCode.INVALID),
        ({"name": "Order \udcff"}, ("name",), UserErrorCode.INVALID),
        ({"payload_schema": {"type": "array"}}, ("schema",), UserErrorCode.INVALID),
        (
            {"payload_schema": {"type": "object", "x": "y" * 300_000}},
            ("schema",),
            UserErrorCode.TOO_LARGE,
        ),
        ({"sample_payload": [1]}, ("sample",), UserErrorCode.INVALID),
        ({"sample_payload": {"x": "\u0000"}}, ("sample",), UserErrorCode.INVALID),
        ({"sample_payload": {"\ud800": 1}}, ("sample",), UserErrorCode.INVALID),
    ],
)
def test_each_field_is_checked(
    changes: dict[str, Any], field: tuple[str, ...], code: UserErrorCode
) -> None:
    found = errors_of(**changes)

    assert (field, code) in [(error_field, error_code) for error_field, error_code, _ in found]


def test_a_sample_that_breaks_the_schema_is_refused_with_the_pointer() -> None:
    sample = order_status_sample() | {"order_status": "shipped"}

    [(field, code, message)] = errors_of(sample_payload=sample)

    assert (field, code) == (("sample",), UserErrorCode.SCHEMA_MISMATCH)
    assert message.startswith("does not match the schema: /order_status: expected one of")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"subject_pointer": "order_id"}, ("subject_pointer",), "is not a JSON pointer"),
        ({"subject_pointer": ""}, ("subject_pointer",), "is not a JSON pointer"),
        (
            {"subject_pointer": "/order"},
            ("subject_pointer",),
            "/order: finds nothing in the sample",
        ),
        (
            {"subject_pointer": "/client"},
            ("subject_pointer",),
            "/client: a subject is a string or an integer; the sample has an object there",
        ),
        ({"status_pointer": "/state"}, ("status_pointer",), "/state: finds nothing"),
        (
            {"status_pointer": "/external_id"},
            ("status_pointer",),
            "/external_id: the schema lists no string values there",
        ),
    ],
)
def test_a_pointer_must_find_a_fitting_value_in_the_sample(
    changes: dict[str, Any], field: tuple[str, ...], message: str
) -> None:
    [(error_field, code, error_message)] = errors_of(**changes)

    assert (error_field, code) == (field, UserErrorCode.INVALID)
    assert message in error_message


def test_a_bad_schema_is_reported_alone_not_as_a_sample_mismatch() -> None:
    found = errors_of(payload_schema={"type": "object", "properties": {"a": {"type": 5}}})

    assert [field for field, _, _ in found] == [("schema",)]
