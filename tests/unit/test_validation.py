"""Input validation: each check returns UserErrors with a field path and a contract code."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.core.errors import Field, UserError
from app.core.validation import (
    MAX_API_KEY_PARAMS,
    MAX_PARAM_VALUE,
    check_api_key_params,
    check_delivery_rate,
    check_email,
    check_payload,
    check_text,
    check_visible,
)

EMAIL = ("notification_email",)
PARAMS = ("api_key_params",)
PAYLOAD = ("payload",)
SUBJECT = ("subject",)


def _codes(errors: list[UserError]) -> list[tuple[Field, str]]:
    return [(error.field, error.code) for error in errors]


# --- delivery rates -------------------------------------------------------------------


@pytest.mark.parametrize("rate", [None, 1, 50, 1000])
def test_a_rate_from_one_to_a_thousand_or_none_is_accepted(rate: int | None) -> None:
    assert check_delivery_rate(("rate",), rate) == []


@pytest.mark.parametrize(
    ("rate", "code"), [(0, "INVALID"), (-5, "INVALID"), (1001, "TOO_LARGE"), (2**40, "TOO_LARGE")]
)
def test_a_rate_out_of_range_is_refused_saying_the_range(rate: int, code: str) -> None:
    [error] = check_delivery_rate(("rate",), rate)

    assert (error.field, error.code) == (("rate",), code)
    assert "from 1 to 1000 deliveries per second" in error.message


# --- emails ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    [
        "ops@example.com",
        "first.last+webhooks@mail.example.co.uk",
        "o'brien@example.io",
        "x@a-b.example",
    ],
)
def test_a_valid_email_passes(email: str) -> None:
    assert check_email(EMAIL, email) == []


@pytest.mark.parametrize("email", ["", "   "])
def test_a_blank_email_is_required(email: str) -> None:
    assert _codes(check_email(EMAIL, email)) == [(EMAIL, "REQUIRED")]


@pytest.mark.parametrize(
    "email",
    [
        "not-an-email",
        "ops@",
        "@example.com",
        "ops@localhost",
        "ops@example..com",
        "ops@-example.com",
        "two@at@example.com",
        "spaced name@example.com",
        "ops@example.com\n",
        "a" * 250 + "@example.com",
    ],
)
def test_a_malformed_email_is_invalid(email: str) -> None:
    errors = check_email(EMAIL, email)

    assert _codes(errors) == [(EMAIL, "INVALID")]
    assert "ops@example.com" in errors[0].message  # shows what a valid one looks like


# --- API key parameters ---------------------------------------------------------------


def test_valid_api_key_params_pass() -> None:
    params = [("api_key", "s3cret"), ("X-Token.v2~", "t")]

    assert check_api_key_params(PARAMS, params, "https://example.com/hook?source=po") == []


def test_no_params_pass() -> None:
    assert check_api_key_params(PARAMS, [], None) == []


@pytest.mark.parametrize("name", ["", "has space", "a&b", "a=b", "é", "x" * 65, "key\n"])
def test_a_bad_param_name_is_invalid_at_its_index(name: str) -> None:
    # Given a good parameter, then a bad one
    errors = check_api_key_params(PARAMS, [("ok", "v"), (name, "v")], None)

    # Then the error points at the second one's name
    assert _codes(errors) == [((*PARAMS, 1, "name"), "INVALID")]


def test_a_param_name_of_64_characters_is_fine() -> None:
    assert check_api_key_params(PARAMS, [("x" * 64, "v")], None) == []


def test_a_param_name_given_twice_is_a_duplicate() -> None:
    errors = check_api_key_params(PARAMS, [("key", "a"), ("other", "b"), ("key", "c")], None)

    assert _codes(errors) == [((*PARAMS, 2, "name"), "DUPLICATE")]
    assert "'key'" in errors[0].message


def test_a_param_name_clashing_with_the_callback_url_query_is_a_duplicate() -> None:
    # The URL already carries ?token=…; a parameter of that name would be sent twice.
    errors = check_api_key_params(
        PARAMS, [("token", "a")], "https://example.com/hook?source=po&token=public"
    )

    assert _codes(errors) == [((*PARAMS, 0, "name"), "DUPLICATE")]


def test_param_names_are_case_sensitive() -> None:
    assert check_api_key_params(PARAMS, [("Key", "a"), ("key", "b")], None) == []


def test_an_empty_param_value_is_required() -> None:
    errors = check_api_key_params(PARAMS, [("key", "")], None)

    assert _codes(errors) == [((*PARAMS, 0, "value"), "REQUIRED")]


def test_a_param_value_over_the_limit_is_too_large() -> None:
    at_limit = check_api_key_params(PARAMS, [("key", "v" * MAX_PARAM_VALUE)], None)
    over = check_api_key_params(PARAMS, [("key", "v" * (MAX_PARAM_VALUE + 1))], None)

    assert at_limit == []
    assert _codes(over) == [((*PARAMS, 0, "value"), "TOO_LARGE")]


def test_too_many_params_are_refused() -> None:
    params = [(f"p{index}", "v") for index in range(MAX_API_KEY_PARAMS + 1)]

    assert _codes(check_api_key_params(PARAMS, params, None)) == [(PARAMS, "INVALID")]
    assert check_api_key_params(PARAMS, params[:MAX_API_KEY_PARAMS], None) == []


def test_every_problem_is_reported_at_once() -> None:
    errors = check_api_key_params(PARAMS, [("bad name", ""), ("k", "v"), ("k", "v")], None)

    assert _codes(errors) == [
        ((*PARAMS, 0, "name"), "INVALID"),
        ((*PARAMS, 0, "value"), "REQUIRED"),
        ((*PARAMS, 2, "name"), "DUPLICATE"),
    ]


# --- payloads -------------------------------------------------------------------------


def test_an_object_payload_is_encoded_compactly() -> None:
    encoded, errors = check_payload(PAYLOAD, {"orderId": "ord_1", "tags": ["a", "é"]}, 1024)

    assert errors == []
    assert encoded == '{"orderId":"ord_1","tags":["a","é"]}'.encode()


@pytest.mark.parametrize(
    "payload", [[1, 2], "text", 42, None, True], ids=["list", "str", "int", "null", "bool"]
)
def test_a_payload_that_is_not_an_object_is_invalid(payload: Any) -> None:
    encoded, errors = check_payload(PAYLOAD, payload, 1024)

    assert encoded is None
    assert _codes(errors) == [(PAYLOAD, "INVALID")]
    assert "JSON object" in errors[0].message


@pytest.mark.parametrize("number", [float("nan"), float("inf")])
def test_a_payload_with_a_non_json_number_is_invalid(number: float) -> None:
    encoded, errors = check_payload(PAYLOAD, {"value": number}, 1024)

    assert encoded is None
    assert _codes(errors) == [(PAYLOAD, "INVALID")]


def test_a_payload_over_the_limit_is_too_large() -> None:
    # Given a payload whose compact encoding is exactly the limit, and one byte more
    base = {"data": ""}
    overhead = len(json.dumps(base, separators=(",", ":")))
    at_limit = {"data": "x" * (1024 - overhead)}
    over = {"data": "x" * (1024 - overhead + 1)}

    # Then the first passes and the second is TOO_LARGE, with both sizes in the message
    assert check_payload(PAYLOAD, at_limit, 1024)[1] == []
    encoded, errors = check_payload(PAYLOAD, over, 1024)
    assert encoded is None
    assert _codes(errors) == [(PAYLOAD, "TOO_LARGE")]
    assert "1025 bytes" in errors[0].message
    assert "1024 bytes" in errors[0].message


def test_the_size_limit_counts_utf8_bytes_not_characters() -> None:
    # {"d":"éé…"} with 400 "é" is 408 characters but 808 bytes.
    encoded, errors = check_payload(PAYLOAD, {"d": "é" * 400}, 805)

    assert _codes(errors) == [(PAYLOAD, "TOO_LARGE")]
    assert encoded is None


# --- texts ----------------------------------------------------------------------------


def test_text_within_the_limit_passes() -> None:
    assert check_text(SUBJECT, "ord_12345", 200, "subject") == []
    assert check_text(SUBJECT, "x" * 200, 200, "subject") == []
    assert check_text(SUBJECT, None, 200, "subject") == []


def test_text_over_the_limit_is_too_large() -> None:
    errors = check_text(SUBJECT, "x" * 201, 200, "subject")

    assert _codes(errors) == [(SUBJECT, "TOO_LARGE")]
    assert errors[0].message == "The subject has at most 200 characters."


@pytest.mark.parametrize("text", ["line\nbreak", "tab\there", "nul\x00", "esc\x1b[0m"])
def test_text_with_control_characters_is_invalid(text: str) -> None:
    errors = check_text(SUBJECT, text, 200, "subject")

    assert _codes(errors) == [(SUBJECT, "INVALID")]
    assert "control characters" in errors[0].message


def test_unicode_text_is_fine() -> None:
    assert check_text(SUBJECT, "Bestellung Nr. 42 — Müller 🏠", 200, "subject") == []


HIDDEN = {
    "right-to-left-override": "\u202e",
    "left-to-right-embedding": "\u202a",
    "first-strong-isolate": "\u2068",
    "right-to-left-mark": "\u200f",
    "arabic-letter-mark": "\u061c",
    "zero-width-space": "\u200b",
    "word-joiner": "\u2060",
    "byte-order-mark": "\ufeff",
    "soft-hyphen": "\u00ad",
    "tag-letter": "\U000e0041",
    "line-separator": "\u2028",
    "hangul-filler": "\u3164",
    "c1-control": "\u0085",
}


@pytest.mark.parametrize("char", HIDDEN.values(), ids=HIDDEN.keys())
def test_text_with_invisible_or_bidi_control_characters_is_invalid(char: str) -> None:
    errors = check_text(SUBJECT, f"ord{char}42", 200, "subject")

    assert _codes(errors) == [(SUBJECT, "INVALID")]
    assert f"U+{ord(char):04X}" in errors[0].message or "control characters" in errors[0].message


@pytest.mark.parametrize(
    "text",
    [
        "Bestellung Nr. 42 \u2014 M\u00fcller \U0001f3e0",
        "\U0001f469\u200d\U0001f4bb ZWJ emoji",  # joiners build emoji sequences
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian needs ZWNJ
        "\u05e9\u05dc\u05d5\u05dd order 7",  # right-to-left letters are fine
        "\u2714\ufe0f done",  # variation selectors choose emoji presentation
    ],
)
def test_visible_unicode_passes(text: str) -> None:
    assert check_text(SUBJECT, text, 200, "subject") == []


def test_the_message_names_the_character() -> None:
    [error] = check_visible(SUBJECT, "ord\u202e1", "subject")

    assert error.message == (
        "The subject must not contain invisible or bidirectional-control characters (found U+202E)."
    )
