"""Custom header checks: names we own or that steer HTTP are refused, values stay plain.

Each refusal is a UserError at the entry's name or value, and no message repeats a
value: header values are secrets (an ``Authorization`` token, an API key).
"""

from __future__ import annotations

import pytest

from app.core.errors import Field, UserError
from app.core.validation import (
    MAX_HEADER_NAME,
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    check_headers,
    reserved_header,
)

HEADERS = ("headers",)
SECRET = "Bearer s3cr3t-VALUE-0123"


def _codes(errors: list[UserError]) -> list[tuple[Field, str]]:
    return [(error.field, error.code) for error in errors]


def test_valid_headers_pass() -> None:
    headers = [
        ("Authorization", SECRET),
        ("X-Api-Key", "k"),
        ("x-tenant", "acme  7\tb"),  # inner spaces and tabs are fine
        ("!#$%&'*+-.^_`|~09azAZ", "v"),  # every character a token allows
        ("Accept", "application/json"),
    ]

    assert check_headers(HEADERS, headers) == []


def test_no_headers_pass() -> None:
    assert check_headers(HEADERS, []) == []


def test_the_largest_accepted_list_passes() -> None:
    headers = [("X" * MAX_HEADER_NAME, "v" * MAX_HEADER_VALUE)] + [
        (f"X-{index}", "v") for index in range(MAX_HEADERS - 1)
    ]

    assert check_headers(HEADERS, headers) == []


@pytest.mark.parametrize(
    "name",
    [
        "host",
        "Host",
        "CONTENT-LENGTH",
        "content-type",
        "Content-Encoding",
        "content-md5",
        "Transfer-Encoding",
        "connection",
        "User-Agent",
        "cookie",
        "webhook-id",
        "Webhook-Signature",
        "webhook-timestamp",
        "WEBHOOK-ATTEMPT",
        "webhook-anything-new",
        "te",
        "Upgrade",
        "keep-alive",
        "Proxy-Authorization",
        "proxy-connection",
        "trailer",
        "expect",
        "accept-encoding",
        "HTTP2-Settings",
    ],
)
def test_a_name_we_own_or_that_steers_http_is_refused_whatever_its_case(name: str) -> None:
    # Given a good header, then a reserved one
    errors = check_headers(HEADERS, [("Authorization", SECRET), (name, SECRET)])

    # Then the error points at the second one's name, says which, and why
    assert _codes(errors) == [((*HEADERS, 1, "name"), "INVALID")]
    assert repr(name) in errors[0].message
    assert "cannot be set: " in errors[0].message
    assert reserved_header(name) is not None


@pytest.mark.parametrize(
    "name", ["Authorization", "X-Api-Key", "Accept", "Date", "Origin", "X-Webhook-Id", "contents"]
)
def test_ordinary_names_are_not_reserved(name: str) -> None:
    assert reserved_header(name) is None


@pytest.mark.parametrize(
    "name",
    ["has space", "a:b", ":authority", "é", "x\r\ny", "a\x00", "(x)", "a/b", "a,b", "a;b", '"q"'],
)
def test_a_name_that_is_not_an_http_token_is_invalid(name: str) -> None:
    errors = check_headers(HEADERS, [(name, "v")])

    assert _codes(errors) == [((*HEADERS, 0, "name"), "INVALID")]
    assert "token" in errors[0].message


def test_an_empty_name_is_required() -> None:
    assert _codes(check_headers(HEADERS, [("", "v")])) == [((*HEADERS, 0, "name"), "REQUIRED")]


def test_a_name_over_64_characters_is_too_large() -> None:
    errors = check_headers(HEADERS, [("X" * (MAX_HEADER_NAME + 1), "v")])

    assert _codes(errors) == [((*HEADERS, 0, "name"), "TOO_LARGE")]


def test_a_name_given_twice_in_any_case_is_a_duplicate() -> None:
    headers = [("X-Token", "a"), ("Other", "b"), ("x-TOKEN", "c")]

    errors = check_headers(HEADERS, headers)

    assert _codes(errors) == [((*HEADERS, 2, "name"), "DUPLICATE")]
    assert "'x-TOKEN'" in errors[0].message


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (f"{SECRET}\r\nX-Injected: 1", "line break"),
        (f"{SECRET}\n", "line break"),
        (f"\r{SECRET}", "line break"),
        (f"{SECRET}\x00", "NUL"),
        (f"{SECRET}\x01", "control characters"),
        (f"{SECRET}\x1b[0m", "control characters"),
        (f"{SECRET}\x7f", "control characters"),
        (f"{SECRET}é", "ASCII"),
        (f"{SECRET}\u202e", "ASCII"),
        (f" {SECRET}", "start or end"),
        (f"{SECRET}\t", "start or end"),
        ("   ", "start or end"),
    ],
)
def test_a_bad_value_is_invalid_and_its_message_never_repeats_it(value: str, says: str) -> None:
    errors = check_headers(HEADERS, [("Authorization", value)])

    assert _codes(errors) == [((*HEADERS, 0, "value"), "INVALID")]
    assert says in errors[0].message
    assert SECRET not in errors[0].message and "s3cr3t" not in errors[0].message


def test_an_empty_value_is_required() -> None:
    errors = check_headers(HEADERS, [("Authorization", "")])

    assert _codes(errors) == [((*HEADERS, 0, "value"), "REQUIRED")]


def test_a_value_over_4_kib_is_too_large_without_being_repeated() -> None:
    value = SECRET + "v" * MAX_HEADER_VALUE

    errors = check_headers(HEADERS, [("Authorization", value)])

    assert _codes(errors) == [((*HEADERS, 0, "value"), "TOO_LARGE")]
    assert SECRET not in errors[0].message


def test_more_than_20_headers_is_one_error_on_the_list() -> None:
    headers = [(f"X-{index}", "v") for index in range(MAX_HEADERS + 1)]

    errors = check_headers(HEADERS, headers)

    assert _codes(errors) == [(HEADERS, "INVALID")]
    assert str(MAX_HEADERS) in errors[0].message


def test_every_bad_entry_is_reported_at_once() -> None:
    headers = [("Host", "a\nb"), ("ok", "fine"), ("bad name", ""), ("OK", "again")]

    errors = check_headers(HEADERS, headers)

    assert _codes(errors) == [
        ((*HEADERS, 0, "name"), "INVALID"),
        ((*HEADERS, 0, "value"), "INVALID"),
        ((*HEADERS, 2, "name"), "INVALID"),
        ((*HEADERS, 2, "value"), "REQUIRED"),
        ((*HEADERS, 3, "name"), "DUPLICATE"),
    ]
