"""Mailer: how rendered emails leave the service.

:class:`SmtpMailer` sends through the server named by ``WEBHOOKS_SMTP_URL``;
:class:`OutboxMailer` stands in when none is configured (development) and keeps
each message as an ``.eml`` file plus a log line, so notices can still be read.

Exceptions::

    MailDeliveryError      the message was not handed to the SMTP server
                           (.temporary: worth retrying later)

Error messages name the server as ``host:port`` and never include the SMTP password.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import re
import ssl
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from app.core.errors import WebhooksError
from app.core.settings import is_loopback_host

_DEFAULT_PORTS = {"smtps": 465, "starttls": 587, "smtp": 25}
_TRUE = {"1", "true", "yes", "on"}
_UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9._@-]+")
_READABLE_HEADERS = ("Date", "From", "To", "Subject", "Message-ID", "X-PlanOmatic-Notice-Id")


class MailDeliveryError(WebhooksError):
    """The message could not be handed to the mail server.

    ``temporary`` is true when trying again later may succeed (connection refused,
    timeout, a 4xx reply) and false for a permanent refusal (a 5xx reply, bad
    credentials, a server without STARTTLS when it was required).
    """

    def __init__(self, message: str, *, temporary: bool = True) -> None:
        super().__init__(message)
        self.temporary = temporary


class Mailer(Protocol):
    """Something that sends an email or raises :class:`MailDeliveryError`."""

    async def send(self, message: EmailMessage) -> None:
        """Send ``message`` to the recipients in its To/Cc/Bcc headers."""
        ...


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to connect, parsed from an ``smtp://`` or ``smtps://`` URL."""

    host: str
    port: int
    username: str | None
    # Kept out of repr so that logging or printing the value cannot leak it.
    password: str | None = field(repr=False)
    implicit_tls: bool = False
    # True: required (``?starttls=1``); False: never (``?starttls=0``); None: upgrade
    # whenever the server offers it.
    starttls: bool | None = None

    @property
    def label(self) -> str:
        """``host:port``, for messages: the URL itself may hold the password."""
        return f"{self.host}:{self.port}"


def parse_smtp_url(smtp_url: str) -> SmtpServer:
    """Parse ``smtp://[user:password@]host[:port][?starttls=1|0]`` or ``smtps://...``.

    Without ``starttls`` the connection upgrades when the server offers STARTTLS.

    Raises :class:`ValueError` (without the password in its message) for anything else.
    """
    parts = urlsplit(smtp_url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname or port == -1:
        raise ValueError(
            "the SMTP URL must look like smtp://[user:password@]host[:port][?starttls=1] "
            "or smtps://[user:password@]host[:port]"
        )
    implicit_tls = parts.scheme == "smtps"
    starttls_values = parse_qs(parts.query).get("starttls")
    starttls: bool | None = None
    if implicit_tls:
        starttls = False
    elif starttls_values is not None:
        starttls = starttls_values[-1].lower() in _TRUE
    mode = "smtps" if implicit_tls else "starttls" if starttls else "smtp"
    return SmtpServer(
        host=parts.hostname,
        port=port if port is not None else _DEFAULT_PORTS[mode],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        implicit_tls=implicit_tls,
        starttls=starttls,
    )


class SmtpMailer:
    """Sends through an SMTP server: plain, STARTTLS or ``smtps://``.

    ``smtp://`` upgrades with STARTTLS whenever the server offers it; ``?starttls=1``
    requires the upgrade (a server that does not offer it gets nothing, rather than the
    password in clear), ``?starttls=0`` never tries. A password about to go in clear to a
    host other than this machine is logged as a warning, once per mailer (production
    refuses such a URL at start-up, see app/core/settings.py). ``timeout`` bounds the whole
    conversation, in seconds, so that a server answering each step slowly (a tarpit)
    cannot hold the sender for longer; each step gets at most ``STEP_TIMEOUT_SECONDS``.
    Each send opens its own connection, so a server restarted between sends is simply
    reached again.
    """

    STEP_TIMEOUT_SECONDS = 10.0

    def __init__(
        self,
        smtp_url: str,
        timeout: float = 30,
        *,
        tls_context: ssl.SSLContext | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._server = parse_smtp_url(smtp_url)
        self._timeout = timeout
        self._tls_context = tls_context
        self._logger = logger if logger is not None else logging.getLogger(__name__)
        self._warned_clear_password = False

    @property
    def server(self) -> str:
        """The server as ``host:port``."""
        return self._server.label

    async def send(self, message: EmailMessage) -> None:
        """Send ``message``; raises :class:`MailDeliveryError` when the server is
        unreachable, too slow, or refuses it."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._converse(_with_date(message))
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [refusal.code for refusal in error.recipients]
            raise MailDeliveryError(
                self._describe("refused the recipients", error),
                temporary=all(400 <= code < 500 for code in codes),
            ) from None
        except aiosmtplib.SMTPResponseException as error:
            raise MailDeliveryError(
                self._describe("refused the message", error),
                temporary=400 <= error.code < 500,
            ) from None
        except (aiosmtplib.SMTPTimeoutError, TimeoutError) as error:
            raise MailDeliveryError(
                self._describe(f"did not finish within {self._timeout:g} s", error)
            ) from None
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected) as error:
            raise MailDeliveryError(self._describe("could not be reached", error)) from None
        except ssl.SSLError as error:
            hint = ""
            if self._server.starttls is None:
                # Upgrading was our idea, not the URL's: say how to opt out.
                hint = " (it offered STARTTLS; fix its certificate or add ?starttls=0)"
            raise MailDeliveryError(
                self._describe(f"failed the TLS handshake{hint}", error), temporary=False
            ) from None
        except aiosmtplib.SMTPException as error:
            # What remains is a capability mismatch (no STARTTLS, no AUTH): retrying
            # will not change the server's answer.
            raise MailDeliveryError(
                self._describe("cannot be used", error), temporary=False
            ) from None
        except OSError as error:
            raise MailDeliveryError(self._describe("could not be reached", error)) from None

    async def _converse(self, message: EmailMessage) -> None:
        server = self._server
        # Credentials are not handed to connect(): logging in is done here, after the
        # STARTTLS decision, so that a password about to go in clear can be noticed.
        client = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            use_tls=server.implicit_tls,
            start_tls=server.starttls,
            tls_context=self._tls_context,
            timeout=min(self._timeout, self.STEP_TIMEOUT_SECONDS),
        )
        async with client:
            if server.username is not None:
                encrypted = client.get_transport_info("sslcontext") is not None
                if not encrypted and not is_loopback_host(server.host):
                    self._warn_clear_password()
                await client.login(server.username, server.password or "")
            await client.send_message(message)

    def _warn_clear_password(self) -> None:
        if self._warned_clear_password:
            return
        self._warned_clear_password = True
        self._logger.warning(
            "SMTP server %s offers no STARTTLS: logging in with the password in clear "
            "(add ?starttls=1 to WEBHOOKS_SMTP_URL to refuse that)",
            self._server.label,
        )

    def _describe(self, what: str, error: BaseException) -> str:
        # Chained exceptions are dropped (``from None``) and the detail scrubbed, so
        # neither a traceback nor a chatty server can carry the password into a log.
        detail = _scrub(_detail(error), self._server.password)
        return f"SMTP server {self._server.label} {what}: {detail}"


@dataclass(frozen=True)
class OutboxEntry:
    """One email kept in the outbox directory."""

    name: str
    path: Path
    message_id: str | None
    subject: str | None
    to: str | None
    saved_at: datetime
    # The notice's stable id (``fn-...``), the part of the Message-ID before the ``@``.
    notice_id: str | None = None
    # When it was sent: the Date header, else the file's time.
    sent_at: datetime | None = None


class OutboxMailer:
    """Keeps emails instead of sending them: an ``.eml`` file each, and a log line.

    The file is named after the Message-ID, so sending the same notice twice
    overwrites the first copy instead of adding a duplicate.
    """

    def __init__(self, directory: Path, logger: logging.Logger | None = None) -> None:
        self._directory = directory
        self._logger = logger if logger is not None else logging.getLogger(__name__)

    @property
    def directory(self) -> Path:
        """Where the ``.eml`` files go."""
        return self._directory

    async def send(self, message: EmailMessage) -> None:
        """Write ``message`` to the outbox, and its recipient, subject and file to the log
        (INFO). Not its body: that holds the failed payloads, an order's client names,
        emails and phone numbers, which the log's wider audience has no need of
        (``webhooks emails show`` prints the whole email)."""
        stamped = _with_date(message)
        if stamped["Message-ID"] is None:
            # Without one the file needs a name all the same; such a message cannot
            # be recognised on a resend anyway.
            stamped["Message-ID"] = make_msgid(domain="outbox.invalid")
        name = _file_name(str(stamped["Message-ID"]))
        data = stamped.as_bytes(policy=policy.SMTP)
        path = await asyncio.to_thread(_write_atomically, self._directory, name, data)
        self._logger.info(
            "No SMTP server configured (WEBHOOKS_SMTP_URL); email to %s (%s) kept in %s; "
            "`webhooks emails show %s` prints it",
            stamped["To"],
            stamped["Subject"],
            path,
            path.stem,
        )


def list_outbox(directory: Path) -> list[OutboxEntry]:
    """The emails in the outbox, newest first; empty when the directory does not exist."""
    if not directory.is_dir():
        return []
    entries = []
    for path in directory.glob("*.eml"):
        message = _parse(path.read_bytes())
        saved_at = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        entries.append(
            OutboxEntry(
                name=path.name,
                path=path,
                message_id=_header(message, "Message-ID"),
                subject=_header(message, "Subject"),
                to=_header(message, "To"),
                saved_at=saved_at,
                notice_id=_header(message, "X-PlanOmatic-Notice-Id"),
                sent_at=_date(message) or saved_at,
            )
        )
    return sorted(entries, key=lambda entry: (entry.saved_at, entry.name), reverse=True)


def find_in_outbox(directory: Path, key: str) -> OutboxEntry | None:
    """The outbox email that ``key`` names: its file name (with or without ``.eml``),
    its Message-ID (with or without the angle brackets) or its notice id (``fn-...``)."""
    wanted = key.strip()
    bare = wanted.strip("<>")
    for entry in list_outbox(directory):
        names = {entry.name, entry.name.removesuffix(".eml")}
        if entry.message_id:
            names.add(entry.message_id.strip().strip("<>"))
        if entry.notice_id:
            names.add(entry.notice_id.strip())
        if wanted in names or bare in names:
            return entry
    return None


def read_outbox(directory: Path, name: str) -> str:
    """One outbox email as readable text: main headers, then the decoded plain-text body.

    ``name`` is an entry's file name (the ``.eml`` suffix may be left off). Raises
    :class:`FileNotFoundError` when there is no such entry; names that would reach
    outside the directory are treated the same way.
    """
    file_name = name if name.endswith(".eml") else f"{name}.eml"
    path = directory / file_name
    if Path(file_name).name != file_name or not path.is_file():
        raise FileNotFoundError(f"no email named {name!r} in the outbox {directory}")
    return readable_email(_parse(path.read_bytes()))


def readable_email(message: EmailMessage) -> str:
    """Headers a person cares about, a blank line, and the plain-text body, decoded."""
    lines = [
        f"{header}: {_header(message, header)}" for header in _READABLE_HEADERS if header in message
    ]
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if isinstance(body, MIMEPart) else "(no plain-text body)"
    return "\n".join(lines) + "\n\n" + str(text)


def mailer_from_settings(smtp_url: str | None, outbox_dir: Path, *, timeout: float = 30) -> Mailer:
    """An :class:`SmtpMailer` when an SMTP URL is configured, else an :class:`OutboxMailer`."""
    if smtp_url:
        return SmtpMailer(smtp_url, timeout)
    return OutboxMailer(outbox_dir)


def _with_date(message: EmailMessage) -> EmailMessage:
    # A Date header belongs to sending, not rendering (rendering stays deterministic);
    # working on a copy leaves the caller's message as it was for a later resend.
    stamped = copy.deepcopy(message)
    if stamped["Date"] is None:
        stamped["Date"] = format_datetime(datetime.now(UTC))
    return stamped


def _detail(error: BaseException) -> str:
    # aiosmtplib's str() of a reply error is its args tuple; the server's own words
    # read better.
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{refusal.recipient}: {refusal.code} {refusal.message}" for refusal in error.recipients
        )
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return f"{error.code} {error.message}"
    if isinstance(error, aiosmtplib.SMTPException):
        return error.message
    return str(error) or type(error).__name__


def _scrub(text: str, secret: str | None) -> str:
    if not secret:
        return text
    return text.replace(secret, "••••")


def _file_name(message_id: str) -> str:
    stem = _UNSAFE_FILENAME_CHARS.sub("_", message_id.strip().strip("<>")).strip("._")
    return f"{stem or 'message'}.eml"


def _write_atomically(directory: Path, name: str, data: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    # Written beside the target then renamed over it, so a reader (or a crash) never
    # sees half a file.
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def _parse(data: bytes) -> EmailMessage:
    parsed = BytesParser(policy=policy.default).parsebytes(data)
    if not isinstance(parsed, EmailMessage):
        raise TypeError("the default email policy parsed into another message class")
    return parsed


def _date(message: EmailMessage) -> datetime | None:
    value = message["Date"]
    if value is None:
        return None
    try:
        moment = value.datetime
    except AttributeError:
        return None
    return moment if isinstance(moment, datetime) else None


def _header(message: EmailMessage, name: str) -> str | None:
    """A header's value on one line: a long header is folded where it was written (the
    first fold may come right after the name), and the fold's white space is no part of
    its value."""
    value = message[name]
    return None if value is None else " ".join(str(value).split())
