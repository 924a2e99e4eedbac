from __future__ import annotations

import pytest

from app.core.masking import MASK, mask_value, masked_url, strip_query


def test_mask_value_keeps_the_last_four_characters_of_a_long_secret() -> None:
    assert mask_value("whsec_abcdefgh1234") == "••••1234"


@pytest.mark.parametrize("value", ["", "abc", "abcdefgh", "abcdefghijk"])
def test_mask_value_hides_a_short_secret_entirely(value: str) -> None:
    assert mask_value(value) == MASK


def test_mask_value_starts_hinting_at_twelve_characters() -> None:
    assert mask_value("abcdefghijkl") == "••••ijkl"


def test_masked_url_replaces_only_the_named_parameters() -> None:
    url = "https://hooks.example.com/in?tenant=acme&api_key=s3cr3t-value&mode=full"

    result = masked_url(url, ["api_key"])

    assert result == "https://hooks.example.com/in?tenant=acme&api_key=••••&mode=full"
    assert "s3cr3t" not in result


def test_masked_url_masks_every_occurrence_and_matches_names_case_insensitively() -> None:
    url = "https://x.example/cb?Token=one&token=two&other=3"

    assert masked_url(url, ["TOKEN"]) == "https://x.example/cb?Token=••••&token=••••&other=3"


def test_masked_url_matches_percent_encoded_names_and_keeps_other_encoding() -> None:
    url = "https://x.example/cb?api%5Fkey=abc&q=a%20b+c&empty="

    assert masked_url(url, ["api_key"]) == "https://x.example/cb?api%5Fkey=••••&q=a%20b+c&empty="


def test_masked_url_masks_a_parameter_given_without_a_value() -> None:
    assert masked_url("https://x.example/cb?key", ["key"]) == "https://x.example/cb?key=••••"


def test_masked_url_masks_a_password_in_the_user_info() -> None:
    url = "https://robot:hunter2@x.example:8443/cb?a=1"

    assert masked_url(url, []) == "https://robot:••••@x.example:8443/cb?a=1"


def test_masked_url_leaves_a_url_without_secrets_unchanged() -> None:
    url = "https://x.example/cb/path?a=1&b=2#frag"

    assert masked_url(url, ["api_key"]) == url


def test_strip_query_drops_query_fragment_and_user_info() -> None:
    url = "https://robot:pw@x.example:8443/cb/path?api_key=abc#frag"

    assert strip_query(url) == "https://x.example:8443/cb/path"
