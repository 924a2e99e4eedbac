"""A real SMTP server for tests, built on aiosmtpd.

The server runs in its own thread and event loop (aiosmtpd's ``Controller``), so both
sync and async tests can use it. Its port is chosen once, up front, so that
:meth:`SmtpTestServer.stop` then :meth:`SmtpTestServer.start` brings it back on the
same address, which is how tests simulate a mail server outage.

    with SmtpTestServer() as server:
        await SmtpMailer(server.url).send(message)
        [received] = server.wait_for(1)
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class ReceivedMail:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes
    # Whether the session had upgraded with STARTTLS when the message came in.
    tls: bool = False

    @property
    def text(self) -> str:
        """The plain-text body, decoded, with newlines for SMTP's line ends."""
        body = self.message.get_body(preferencelist=("plain",))
        assert body is not None, "the message has no plain-text body"
        content: str = body.get_content()
        return content.replace("\r\n", "\n")


class SmtpTestServer:
    """An SMTP server on 127.0.0.1 that records what it receives.

    ``credentials`` (user, password) makes it advertise AUTH (over plain text, as a
    test server may) and accept only that pair; the client need not log in unless
    it wants to. :meth:`refuse` makes it answer DATA with a temporary failure.
    ``step_delay`` makes it answer EHLO, MAIL, RCPT and DATA each that many seconds late
    (a slow or tarpitting server). ``tls_context`` makes it offer STARTTLS; with
    ``credentials`` too, AUTH is then accepted only after the upgrade.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        credentials: tuple[str, str] | None = None,
        step_delay: float = 0.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port if port is not None else free_port()
        self._credentials = credentials
        self.step_delay = step_delay
        self._tls_context = tls_context
        # Whether each successful AUTH came over TLS, in order.
        self.logins: list[bool] = []
        # Messages between MAIL and the end of DATA right now, and the most at once.
        self._active = 0
        self.most_at_once = 0
        self._lock = threading.Condition()
        self._received: list[ReceivedMail] = []
        self._refusal: str | None = None
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        """``smtp://127.0.0.1:<port>``, without credentials."""
        return f"smtp://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._controller is not None

    def start(self) -> None:
        """Start listening on :attr:`port` (again, after :meth:`stop`)."""
        if self._controller is not None:
            return
        # A stopped Controller has closed its event loop, so each start needs a new one.
        controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            ready_timeout=5.0,
            authenticator=self._authenticate if self._credentials else None,
            auth_require_tls=self._tls_context is not None,
            tls_context=self._tls_context,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop listening; connections are then refused until :meth:`start`."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def refuse(self, reply: str = "451 4.3.0 Temporarily unable to accept mail") -> None:
        """Answer every DATA with ``reply`` (a full SMTP reply line) until :meth:`accept`."""
        with self._lock:
            self._refusal = reply

    def accept(self) -> None:
        """Accept messages again after :meth:`refuse`."""
        with self._lock:
            self._refusal = None

    @property
    def messages(self) -> list[ReceivedMail]:
        """What was received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._received)

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self._lock:
            self._received.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """Block until at least ``count`` messages arrived; returns them all.

        Raises :class:`TimeoutError` naming how many did arrive. Do not call it from
        an event loop that must keep running to send the mail: use
        :meth:`wait_for_async` there.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected {count} messages within {timeout:g} s, got {len(self._received)}"
                    )
                self._lock.wait(remaining)
            return list(self._received)

    async def wait_for_async(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """:meth:`wait_for` without blocking the running event loop."""
        return await asyncio.to_thread(self.wait_for, count, timeout)

    def __enter__(self) -> SmtpTestServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _begin(self) -> None:
        with self._lock:
            self._active += 1
            self.most_at_once = max(self.most_at_once, self._active)

    def _end(self) -> None:
        with self._lock:
            self._active -= 1

    def _record(self, envelope: Envelope, session: Session) -> str:
        with self._lock:
            if self._refusal is not None:
                return self._refusal
            raw = _as_bytes(envelope.original_content or envelope.content)
            parsed = BytesParser(policy=policy.default).parsebytes(raw)
            assert isinstance(parsed, EmailMessage)
            self._received.append(
                ReceivedMail(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    message=parsed,
                    raw=raw,
                    tls=session.ssl is not None,
                )
            )
            self._lock.notify_all()
        return "250 2.0.0 OK"

    def _authenticate(
        self,
        server: SMTPProtocol,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        assert self._credentials is not None
        user, password = self._credentials
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (user, password)
        if ok:
            with self._lock:
                self.logins.append(session.ssl is not None)
        # handled=False: aiosmtpd then answers 535 itself (its default assumes the
        # authenticator already replied, and the client would wait forever).
        return AuthResult(success=ok, handled=False)


class _Handler:
    def __init__(self, server: SmtpTestServer) -> None:
        self._server = server

    async def _slowly(self) -> None:
        if self._server.step_delay:
            await asyncio.sleep(self._server.step_delay)

    async def handle_EHLO(
        self,
        server: SMTPProtocol,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        await self._slowly()
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self,
        server: SMTPProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        self._server._begin()
        await self._slowly()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTPProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        await self._slowly()
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTPProtocol, session: Session, envelope: Envelope) -> str:
        await self._slowly()
        try:
            return self._server._record(envelope, session)
        finally:
            self._server._end()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _as_bytes(content: bytes | str | None) -> bytes:
    if content is None:
        return b""
    return content if isinstance(content, bytes) else content.encode("utf-8")
