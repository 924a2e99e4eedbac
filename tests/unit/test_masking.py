from __future__ import annotations

import itertools
import random
import time

import pytest

from app.core.masking import MASK, Redactor, mask_value, masked_url, strip_query


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


def covered_by_brute_force(text: str, values: list[str]) -> str:
    """What a redactor must answer, the slow way: every character of every occurrence of
    every value is covered, and each run of covered characters becomes one mask."""
    covered = [False] * len(text)
    for value in values:
        for start in range(len(text)):
            if value and text.startswith(value, start):
                covered[start : start + len(value)] = [True] * len(value)
    pieces = []
    for hidden, run in itertools.groupby(zip(text, covered, strict=True), key=lambda c: c[1]):
        pieces.append(MASK if hidden else "".join(char for char, _ in run))
    return "".join(pieces)


def test_redactor_masks_every_occurrence_of_every_value() -> None:
    redact = Redactor(["s3cr3t", "tok-42"])

    assert redact("a s3cr3t, b tok-42 and s3cr3t again") == f"a {MASK}, b {MASK} and {MASK} again"
    assert redact("nothing here") == "nothing here"


def test_redactor_leaves_no_piece_of_an_overlapping_occurrence_standing() -> None:
    # "aabaa" overlaps itself four characters on, which is not a multiple of its period (3)
    assert Redactor(["aabaa"])("x aabaaabaa y") == f"x {MASK} y"
    # a run of occurrences a period apart, and two values overlapping each other
    assert Redactor(["abab"])("ababababab!") == f"{MASK}!"
    assert Redactor(["key-1", "1-value"])("[key-1-value]") == f"[{MASK}]"


@pytest.mark.parametrize("seed", range(200))
def test_redactor_agrees_with_brute_force_on_small_periodic_texts(seed: int) -> None:
    chance = random.Random(seed)
    text = "".join(chance.choice("ab") for _ in range(chance.randint(0, 40)))
    values = ["".join(chance.choice("ab") for _ in range(chance.randint(1, 6))) for _ in range(3)]

    assert Redactor(values)(text) == covered_by_brute_force(text, values)


def test_redactor_is_linear_on_a_text_made_of_overlapping_occurrences() -> None:
    # Searching again one character after each match would compare the whole value at
    # each of the text's positions: about 10^9 steps here.
    redact = Redactor(["a" * 1024, "ab" * 512])
    text = "a" * 600_000 + "b" + "ab" * 300_000

    started = time.perf_counter()
    result = redact(text)

    assert result == MASK
    assert time.perf_counter() - started < 0.5


def test_redactor_ignores_empty_values_and_names_none_in_its_repr() -> None:
    redact = Redactor(["", "hunter2-secret"])

    assert redact("abc") == "abc"
    assert "hunter2" not in repr(redact) and "hunter2" not in str(redact)
    assert not Redactor([""])
