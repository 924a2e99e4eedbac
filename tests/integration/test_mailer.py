from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from app.delivery.mailer import (
    MailDeliveryError,
    OutboxMailer,
    SmtpMailer,
    list_outbox,
    mailer_from_settings,
    parse_smtp_url,
    read_outbox,
)
from tests.receivers import tls_contexts
from tests.smtp import SmtpTestServer, free_port

PASSWORD = "pa55-w0rd-Zq9"


def make_message(message_id: str = "<fn-1@planomatic.example>") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "PlanOmatic Webhooks <webhooks@planomatic.example>"
    message["To"] = "ops@customer.example"
    message["Subject"] = "[PlanOmatic Webhooks] Delivery of Order Status failed"
    message["Message-ID"] = message_id
    message.set_content("Callback URL: https://x.example/cb?api_key=••••\nAttempt #1 HTTP 500\n")
    return message


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


async def test_smtp_mailer_delivers_to_a_real_server(smtp_server: SmtpTestServer) -> None:
    await SmtpMailer(smtp_server.url).send(make_message())

    [received] = await smtp_server.wait_for_async(1)
    assert received.mail_from == "webhooks@planomatic.example"
    assert received.rcpt_tos == ("ops@customer.example",)
    assert received.message["Subject"] == "[PlanOmatic Webhooks] Delivery of Order Status failed"
    assert received.message["Date"] is not None
    body = received.message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    assert "api_key=••••" in body.get_content()


async def test_smtp_mailer_logs_in_when_the_url_has_credentials() -> None:
    with SmtpTestServer(credentials=("robot", PASSWORD)) as server:
        await SmtpMailer(f"smtp://robot:{PASSWORD}@127.0.0.1:{server.port}").send(make_message())

        assert len(await server.wait_for_async(1)) == 1


async def test_plain_smtp_upgrades_to_tls_when_the_server_offers_starttls() -> None:
    # Given a server offering STARTTLS (a certificate made for this test), which accepts
    # AUTH only after the upgrade, and a URL that says nothing about TLS
    tls = tls_contexts(["localhost"])
    with SmtpTestServer(credentials=("robot", PASSWORD), tls_context=tls.server) as server:
        mailer = SmtpMailer(
            f"smtp://robot:{PASSWORD}@localhost:{server.port}", tls_context=tls.client
        )

        # When an email is sent
        await mailer.send(make_message())

        # Then the session upgraded before the password went out, and the message came
        # in encrypted
        [received] = await server.wait_for_async(1)
    assert server.logins == [True]
    assert received.tls is True


async def test_starttls_0_never_upgrades() -> None:
    tls = tls_contexts(["localhost"])
    with SmtpTestServer(tls_context=tls.server) as server:
        await SmtpMailer(f"smtp://localhost:{server.port}?starttls=0", tls_context=tls.client).send(
            make_message()
        )

        [received] = await server.wait_for_async(1)
    assert received.tls is False


async def test_an_untrusted_certificate_is_a_permanent_error() -> None:
    # Given a server whose certificate the client has no reason to trust
    tls = tls_contexts(["localhost"])
    with SmtpTestServer(credentials=("robot", PASSWORD), tls_context=tls.server) as server:
        mailer = SmtpMailer(f"smtp://robot:{PASSWORD}@localhost:{server.port}")

        # Then nothing is sent, the password least of all
        with pytest.raises(MailDeliveryError) as caught:
            await mailer.send(make_message())

    assert caught.value.temporary is False
    assert "?starttls=0" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert server.logins == [] and server.messages == []


async def test_a_tarpit_is_cut_off_at_the_whole_conversation_deadline() -> None:
    # Given a server answering each step 1 s late and a 2 s deadline for the whole send
    with SmtpTestServer(step_delay=1.0) as server:
        mailer = SmtpMailer(server.url, timeout=2)
        started = time.monotonic()

        # Then the send gives up at the deadline, as a temporary error
        with pytest.raises(MailDeliveryError) as caught:
            await mailer.send(make_message())
        took = time.monotonic() - started

    assert caught.value.temporary is True
    assert "within 2 s" in str(caught.value)
    assert took < 3.5


async def test_wrong_password_is_a_permanent_error_that_does_not_repeat_it() -> None:
    with SmtpTestServer(credentials=("robot", "the-right-one")) as server:
        mailer = SmtpMailer(f"smtp://robot:{PASSWORD}@127.0.0.1:{server.port}")

        with pytest.raises(MailDeliveryError) as caught:
            await mailer.send(make_message())

    assert not caught.value.temporary
    assert PASSWORD not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is not None
    assert PASSWORD not in repr(caught.value.__context__)


async def test_a_down_server_fails_quickly_without_leaking_the_password() -> None:
    mailer = SmtpMailer(f"smtp://robot:{PASSWORD}@127.0.0.1:{free_port()}", timeout=5)
    started = time.monotonic()

    with pytest.raises(MailDeliveryError) as caught:
        await mailer.send(make_message())

    assert time.monotonic() - started < 2
    assert caught.value.temporary
    assert "could not be reached" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(parse_smtp_url(f"smtp://robot:{PASSWORD}@mail.example"))


async def test_a_451_refusal_is_a_temporary_error(smtp_server: SmtpTestServer) -> None:
    smtp_server.refuse()

    with pytest.raises(MailDeliveryError, match="451") as caught:
        await SmtpMailer(smtp_server.url).send(make_message())

    assert caught.value.temporary
    assert smtp_server.messages == []


async def test_a_permanent_refusal_is_not_temporary(smtp_server: SmtpTestServer) -> None:
    smtp_server.refuse("554 5.6.0 Message rejected")

    with pytest.raises(MailDeliveryError, match="554") as caught:
        await SmtpMailer(smtp_server.url).send(make_message())

    assert not caught.value.temporary


async def test_starttls_required_but_not_offered_is_refused(smtp_server: SmtpTestServer) -> None:
    mailer = SmtpMailer(f"smtp://robot:{PASSWORD}@127.0.0.1:{smtp_server.port}?starttls=1")

    with pytest.raises(MailDeliveryError, match="STARTTLS") as caught:
        await mailer.send(make_message())

    assert not caught.value.temporary
    assert PASSWORD not in str(caught.value)
    assert smtp_server.messages == []


async def test_sending_works_again_once_the_server_is_back_on_the_same_port(
    smtp_server: SmtpTestServer,
) -> None:
    mailer = SmtpMailer(smtp_server.url)
    await mailer.send(make_message("<fn-1@x>"))
    smtp_server.stop()

    with pytest.raises(MailDeliveryError):
        await mailer.send(make_message("<fn-2@x>"))

    smtp_server.start()
    await mailer.send(make_message("<fn-3@x>"))

    received = await smtp_server.wait_for_async(2)
    assert [mail.message["Message-ID"] for mail in received] == ["<fn-1@x>", "<fn-3@x>"]


async def test_outbox_mailer_writes_a_readable_eml_and_logs_where_not_the_body(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mailer = OutboxMailer(tmp_path / "outbox", logging.getLogger("test.outbox"))

    with caplog.at_level(logging.INFO, logger="test.outbox"):
        await mailer.send(make_message())

    [entry] = list_outbox(tmp_path / "outbox")
    assert entry.name == "fn-1@planomatic.example.eml"
    assert entry.subject == "[PlanOmatic Webhooks] Delivery of Order Status failed"
    assert entry.to == "ops@customer.example"
    text = read_outbox(tmp_path / "outbox", entry.name)
    assert "Subject: [PlanOmatic Webhooks] Delivery of Order Status failed" in text
    assert "Callback URL: https://x.example/cb?api_key=••••" in text
    assert "Attempt #1 HTTP 500" in text
    # The log says where the email is and to whom, never what it says (the payloads in
    # it carry an order's personal data)
    assert str(entry.path) in caplog.text
    assert "ops@customer.example" in caplog.text
    assert "Attempt #1 HTTP 500" not in caplog.text
    assert "Callback URL" not in caplog.text


async def test_outbox_resending_the_same_notice_overwrites_it(tmp_path: Path) -> None:
    mailer = OutboxMailer(tmp_path)

    await mailer.send(make_message("<fn-1@x>"))
    await mailer.send(make_message("<fn-1@x>"))
    await mailer.send(make_message("<fn-2@x>"))

    assert sorted(entry.name for entry in list_outbox(tmp_path)) == ["fn-1@x.eml", "fn-2@x.eml"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fn-1@x.eml", "fn-2@x.eml"]


def test_read_outbox_refuses_names_outside_the_directory(tmp_path: Path) -> None:
    (tmp_path / "secret.eml").write_text("Subject: no\n\nno\n")
    outbox = tmp_path / "outbox"
    outbox.mkdir()

    with pytest.raises(FileNotFoundError):
        read_outbox(outbox, "../secret.eml")
    with pytest.raises(FileNotFoundError):
        read_outbox(outbox, "missing")
    assert list_outbox(tmp_path / "nowhere") == []


def test_mailer_from_settings_picks_smtp_only_when_configured(tmp_path: Path) -> None:
    assert isinstance(mailer_from_settings("smtp://127.0.0.1:2525", tmp_path), SmtpMailer)
    assert isinstance(mailer_from_settings(None, tmp_path), OutboxMailer)


@pytest.mark.parametrize(
    ("url", "host", "port", "implicit_tls", "starttls"),
    [
        # no starttls: upgrade when the server offers it
        ("smtp://mail.example", "mail.example", 25, False, None),
        ("smtp://u:p@mail.example?starttls=1", "mail.example", 587, False, True),
        ("smtps://u:p@mail.example", "mail.example", 465, True, False),
        ("smtp://mail.example:2525?starttls=0", "mail.example", 2525, False, False),
    ],
)
def test_parse_smtp_url(
    url: str, host: str, port: int, implicit_tls: bool, starttls: bool | None
) -> None:
    server = parse_smtp_url(url)

    assert (server.host, server.port, server.implicit_tls, server.starttls) == (
        host,
        port,
        implicit_tls,
        starttls,
    )


def test_a_bad_smtp_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError) as caught:
        SmtpMailer(f"http://robot:{PASSWORD}@mail.example")

    assert PASSWORD not in str(caught.value)
