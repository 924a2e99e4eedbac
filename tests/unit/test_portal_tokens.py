"""Portal secrets: the shape a token must have, and the CSRF token derived per session."""

from __future__ import annotations

from app.core.portal_tokens import csrf_matches, csrf_token, new_secret, secret_hash, well_formed


def test_new_secrets_are_43_characters_of_base64url_and_differ() -> None:
    first, second = new_secret(), new_secret()

    assert well_formed(first) and well_formed(second) and first != second
    assert secret_hash(first) != secret_hash(second) and len(secret_hash(first)) == 32


def test_anything_not_shaped_like_a_secret_is_malformed() -> None:
    for presented in ("", "A" * 42, "A" * 44, "A" * 42 + "=", "A" * 42 + "é", "A" * 10_000_000):
        assert not well_formed(presented)


def test_the_csrf_token_is_the_sessions_own_and_never_the_session_id() -> None:
    session, other = new_secret(), new_secret()

    token = csrf_token(session)

    assert token == csrf_token(session) and token != session and well_formed(token)
    assert csrf_matches(session, token)
    assert not csrf_matches(session, csrf_token(other))
    assert not csrf_matches(session, None)
    assert not csrf_matches(session, "")
    assert not csrf_matches(session, token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not csrf_matches(session, "é" * 43)
