"""Why an attempt failed, named without quoting it.

The transport (app/delivery/transport.py) says why an attempt failed in a phrase that may
name hosts and addresses. Traces (``error.type``) and operator events (``error_kind``)
show its kind instead, each in its own vocabulary; this is the one table that reads the
phrases, so a phrase the transport adds is named once for both.
"""

from __future__ import annotations

# The transport's phrases by how they begin, first match wins. "HTTP <status>" is not
# here: an error answer is named by its status.
_PHRASE_KINDS = (
    ("redirect (", "redirect"),
    ("timed out", "timeout"),
    ("connection refused", "connection_refused"),
    ("connection reset", "connection_reset"),
    ("connection closed", "connection_closed"),
    ("connection failed", "connection_failed"),
    ("TLS error", "tls_error"),
    ("DNS lookup failed", "dns_error"),
    ("blocked:", "blocked_target"),
    ("The callback URL", "invalid_url"),
    ("invalid HTTP response", "invalid_response"),
    ("unexpected error", "unexpected"),
)


def is_error_answer(error: str) -> bool:
    """Whether ``error`` is the transport's ``HTTP <status>``: the receiver answered."""
    return error.startswith("HTTP ")


def phrase_kind(error: str) -> str | None:
    """The short name of a transport phrase (``connection_refused``, ``tls_error``...);
    None for an error answer or a phrase no one named yet."""
    for prefix, kind in _PHRASE_KINDS:
        if error.startswith(prefix):
            return kind
    return None
