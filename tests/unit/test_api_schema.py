"""How a client's GraphQL errors are summed up in the log: codes and places, no text."""

from __future__ import annotations

import logging

import pytest
from graphql import GraphQLError, Source
from graphql.error import GraphQLSyntaxError

from schema.api_schema import LOGGED_ERRORS, describe, log_client_errors

DOCUMENT = Source('query {\n  viewer { role(secret: "hunter2") }\n}')


def test_an_error_with_a_path_is_named_by_its_code_and_path() -> None:
    error = GraphQLError("no", path=["deliveries", 3, "event"], extensions={"code": "FORBIDDEN"})

    assert describe(error) == "FORBIDDEN at deliveries.3.event"


def test_a_validation_error_is_named_by_its_place_in_the_document() -> None:
    error = GraphQLError("Unknown argument 'secret'.", source=DOCUMENT, positions=[20])

    assert describe(error) == "GRAPHQL_VALIDATION_FAILED at 2:13"


def test_a_syntax_error_is_a_parse_failure() -> None:
    error = GraphQLSyntaxError(DOCUMENT, 5, "Expected Name")

    assert describe(error).startswith("GRAPHQL_PARSE_FAILED at 1:")


def test_the_log_line_holds_neither_message_nor_document(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    errors = [
        GraphQLError(f'Expected Int, found "hunter2" ({index})', source=DOCUMENT, positions=[30])
        for index in range(LOGGED_ERRORS + 2)
    ]

    log_client_errors(errors)

    [record] = caplog.records
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert message.startswith("GraphQL request refused: GRAPHQL_VALIDATION_FAILED at 2:")
    assert message.endswith("; and 2 more")
    assert message.count("GRAPHQL_VALIDATION_FAILED") == LOGGED_ERRORS
    assert "hunter2" not in caplog.text
