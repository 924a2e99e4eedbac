"""Outbox emails read back as a person reads them: a folded header is one line."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from app.delivery.mailer import readable_email

# As a writer may fold a long Subject: right after its name.
FOLDED = (
    b"Subject:\n [PlanOmatic Webhooks] 2 deliveries failed\n for subscription 1234\n"
    b"To: ops@acme.example\nContent-Type: text/plain\n\nThe body.\n"
)


def test_a_header_folded_after_its_name_reads_as_one_line_without_leading_space() -> None:
    message = BytesParser(policy=policy.default).parsebytes(FOLDED)
    assert isinstance(message, EmailMessage)

    text = readable_email(message)

    assert "Subject: [PlanOmatic Webhooks] 2 deliveries failed for subscription 1234\n" in text
