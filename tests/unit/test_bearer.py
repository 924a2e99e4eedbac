"""The one parser of presented credentials: HTTP Authorization headers and websocket
connection_init payloads."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from app.web.bearer import AmbiguousCredentials, connection_key, header_key, presented_key


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ([], None),
        (["Bearer pwk_1"], "pwk_1"),
        (["bearer pwk_1"], "pwk_1"),
        (["BEARER   pwk_1  "], "pwk_1"),
        (["  Bearer pwk_1"], "pwk_1"),
        (["Basic dXNlcjpwdw=="], None),
        (["Bearer"], None),
        (["Bearer    "], None),
        (["Bearerpwk_1"], None),
        (["Bearer\tpwk_1"], None),
        (["Token pwk_1"], None),
        ([""], None),
        (["pwk_1"], None),
    ],
)
def test_a_bearer_credential_presents_its_key(values: list[str], key: str | None) -> None:
    assert presented_key(values) == key


@pytest.mark.parametrize(
    "values",
    [["Bearer pwk_1", "Bearer pwk_2"], ["Bearer pwk_1", "Bearer pwk_1"], ["Bearer pwk_1", ""]],
)
def test_two_values_are_refused_whatever_they_say(values: list[str]) -> None:
    with pytest.raises(AmbiguousCredentials):
        presented_key(values)


def test_a_request_presents_the_key_of_its_authorization_header() -> None:
    headers = Headers(raw=[(b"authorization", b"Bearer pwk_1"), (b"x-other", b"Bearer pwk_2")])

    assert header_key(headers) == "pwk_1"
    assert header_key(Headers(raw=[])) is None


def test_a_request_with_two_authorization_headers_is_ambiguous() -> None:
    # Two header lines (ASGI servers hand the names in lower case), whatever the second says.
    headers = Headers(raw=[(b"authorization", b"Bearer pwk_1"), (b"authorization", b"Basic x")])

    with pytest.raises(AmbiguousCredentials):
        header_key(headers)


@pytest.mark.parametrize("name", ["authorization", "Authorization", "AUTHORIZATION"])
def test_connection_init_accepts_the_name_in_any_case(name: str) -> None:
    params: dict[str, object] = {name: "Bearer pwk_1", "other": "x"}

    assert connection_key(params) == "pwk_1"


def test_connection_init_reads_the_value_as_a_header_would_be() -> None:
    assert connection_key({"authorization": "  bearer   pwk_1 "}) == "pwk_1"
    assert connection_key({"authorization": "Basic dXNlcjpwdw=="}) is None
    assert connection_key({"authorization": "pwk_1"}) is None


def test_connection_init_with_the_name_twice_is_ambiguous() -> None:
    params: dict[str, object] = {"authorization": "Bearer pwk_1", "Authorization": "Bearer pwk_2"}

    with pytest.raises(AmbiguousCredentials):
        connection_key(params)


def test_a_value_that_is_not_text_presents_no_key() -> None:
    assert connection_key({"Authorization": ["Bearer pwk_1"]}) is None
    assert connection_key({"Authorization": None}) is None


def test_no_payload_presents_no_key() -> None:
    assert connection_key({}) is None
    assert connection_key(None) is None
