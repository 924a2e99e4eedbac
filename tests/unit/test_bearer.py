"""The one parser of presented credentials: HTTP Authorization headers and websocket
connection_init payloads."""

from __future__ import annotations

import pytest

from app.domain.api_keys import AmbiguousCredentials, connection_authorization, presented_key


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


@pytest.mark.parametrize("name", ["authorization", "Authorization", "AUTHORIZATION"])
def test_connection_init_accepts_the_name_in_any_case(name: str) -> None:
    params: dict[str, object] = {name: "Bearer pwk_1", "other": "x"}

    assert presented_key(connection_authorization(params)) == "pwk_1"


def test_connection_init_with_the_name_twice_is_ambiguous() -> None:
    params: dict[str, object] = {"authorization": "Bearer pwk_1", "Authorization": "Bearer pwk_2"}

    with pytest.raises(AmbiguousCredentials):
        presented_key(connection_authorization(params))


def test_a_value_that_is_not_text_presents_no_key() -> None:
    assert presented_key(connection_authorization({"Authorization": ["Bearer pwk_1"]})) is None
    assert presented_key(connection_authorization({})) is None
