"""The payload as a failure email shows it: pretty JSON, secrets masked, cut at its cap."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

import pytest

from app.core.masking import MASK, Redactor
from app.delivery.email_payload import (
    PAYLOAD_CAP_BYTES,
    kib,
    render_payload,
    values_to_redact,
)
from tests.payloads import order_status_payload

NOTHING = Redactor(())
API_KEY_VALUE = "key-value-5f3a9c1e"


def test_the_payload_is_pretty_json_in_the_publishers_key_order() -> None:
    payload = order_status_payload(order_status="scheduled", zeta=1, alpha=2)

    shown = render_payload(payload, NOTHING)

    assert shown.text == json.dumps(payload, indent=2, ensure_ascii=False)
    assert shown.text.index('"zeta"') < shown.text.index('"alpha"')
    assert '\n  "order_status": "scheduled",\n' in shown.text
    assert not shown.cut and shown.shown_bytes == shown.full_bytes == len(shown.text.encode())


def test_non_ascii_is_kept_and_strings_stay_on_their_line() -> None:
    payload = order_status_payload(order_notes="Ménage à 3 € 😀\r\n.\r\nFrom the client\n")

    shown = render_payload(payload, NOTHING)

    assert '"order_notes": "Ménage à 3 € 😀\\r\\n.\\r\\nFrom the client\\n"' in shown.text
    assert json.loads(shown.text) == payload


def test_characters_that_mislead_a_reader_are_json_escapes() -> None:
    # A right-to-left override would show the text after it reversed; NEL and U+2028
    # would break the line in some readers.
    notes = "pay \u202e0001$\u202c now\u0085next\u2028line"
    payload = order_status_payload(order_notes=notes)

    shown = render_payload(payload, NOTHING)

    assert '"pay \\u202e0001$\\u202c now\\u0085next\\u2028line"' in shown.text
    for char in "\u202e\u202c\u0085\u2028":
        assert char not in shown.text
    assert json.loads(shown.text) == payload


def padded(size: int, tail: str) -> dict[str, Any]:
    """A payload whose rendered text has ``size`` bytes before ``tail`` (repeated), which
    ends it: an added field comes last, its value then only '"\n}'."""
    text = render_payload(order_status_payload(filler=""), NOTHING).text.encode()
    fill = size - (text.index(b'"filler": "') + len(b'"filler": "'))
    return order_status_payload(filler="x" * fill + tail * 40)


@pytest.mark.parametrize("char", ["é", "€", "😀"])
@pytest.mark.parametrize("back", [0, 1, 2, 3])
def test_a_long_payload_is_cut_at_its_cap_on_a_character_boundary(char: str, back: int) -> None:
    # Given multibyte characters straddling the cap at each possible offset
    payload = padded(PAYLOAD_CAP_BYTES - back, char)
    full = json.dumps(payload, indent=2, ensure_ascii=False)

    shown = render_payload(payload, NOTHING)

    # Then the text is the longest prefix of whole characters within the cap
    assert shown.cut
    assert full.startswith(shown.text)
    assert shown.shown_bytes == len(shown.text.encode()) <= PAYLOAD_CAP_BYTES
    assert PAYLOAD_CAP_BYTES - shown.shown_bytes < len(char.encode())
    assert shown.full_bytes == len(full.encode())


def test_a_payload_exactly_at_its_cap_is_whole() -> None:
    payload = padded(PAYLOAD_CAP_BYTES - len('"\n}'), "")

    shown = render_payload(payload, NOTHING)

    assert shown.full_bytes == PAYLOAD_CAP_BYTES
    assert not shown.cut


def test_sizes_read_in_whole_kib_rounded_up() -> None:
    assert kib(64 * 1024) == "64 KiB"
    assert kib(64 * 1024 + 1) == "65 KiB"
    assert kib(300 * 1024) == "300 KiB"


def test_an_api_key_value_in_the_payload_is_masked_in_each_of_its_forms() -> None:
    value = 'k"ey\\é/1 2'
    redact = Redactor(
        values_to_redact(header_values=[], api_key_values=[value], signing_secrets=[])
    )
    payload = order_status_payload(
        order_notes=f"the key is {value}",
        external_id=f"https://hooks.example/in?api_key={quote_plus(value)}",
    )

    shown = render_payload(payload, redact)

    assert f'"order_notes": "the key is {MASK}"' in shown.text
    assert f'"external_id": "https://hooks.example/in?api_key={MASK}"' in shown.text
    assert json.dumps(value)[1:-1] not in shown.text
    assert quote_plus(value) not in shown.text


def test_signing_secrets_are_masked_with_and_without_their_prefix() -> None:
    current, previous = (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_b2xkc2VjcmV0a2V5Zm9ydGVzdHM=",
    )
    redact = Redactor(
        values_to_redact(header_values=[], api_key_values=[], signing_secrets=[current, previous])
    )
    payload = order_status_payload(order_notes=f"{current} {previous.removeprefix('whsec_')}")

    shown = render_payload(payload, redact)

    assert f'"order_notes": "{MASK} {MASK}"' in shown.text
    for secret in (current, previous):
        assert secret.removeprefix("whsec_") not in shown.text


def test_a_secret_across_the_cap_is_masked_before_the_cut() -> None:
    # Given the API key value starting a few bytes before the cap
    payload = padded(PAYLOAD_CAP_BYTES - 6, API_KEY_VALUE)
    redact = Redactor(
        values_to_redact(header_values=[], api_key_values=[API_KEY_VALUE], signing_secrets=[])
    )

    shown = render_payload(payload, redact)

    # Then not even its first characters are shown
    assert shown.cut
    assert shown.text.endswith("x" + MASK[:2])  # six bytes of the mask's bullets
    assert API_KEY_VALUE[:6] not in shown.text


def test_values_to_redact_lists_each_form_once_and_no_empty_value() -> None:
    values = values_to_redact(
        header_values=[], api_key_values=["plain", "", "plain"], signing_secrets=[]
    )

    assert values == ("plain",)
