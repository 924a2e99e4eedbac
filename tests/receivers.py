"""Receivers: a real HTTP server standing in for a subscriber's callback URL.

It listens on 127.0.0.1 on a port the OS picks, serves from background threads (so it
works from sync tests, async tests and tests that run the worker as a subprocess),
records every request, and can be scripted per path to misbehave:

    with Receiver(secret=secret) as receiver:
        receiver.script("/hook", [respond(500), respond(500), respond(200)])
        ... deliver to receiver.url_for("/hook") ...
        [request] = receiver.wait_for(1)
        assert request.verified

A script is a single :class:`Reply`, a sequence of them (used in order, the last one
repeats) or a callable from the :class:`RecordedRequest` to a reply. Paths without a
script get the receiver's default reply (200 "ok").
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import http.server
import json
import math
import socket
import socketserver
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from standardwebhooks.webhooks import Webhook

ReplyKind = Literal["respond", "close", "reset", "close_mid_response", "huge_body"]
Script = Callable[["RecordedRequest"], "Reply"]

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Reply:
    """How the receiver answers one request. Build these with the helpers below."""

    kind: ReplyKind = "respond"
    status: int = 200
    body: bytes = b"ok"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering; math.inf waits until stop()
    size: int = 0  # huge_body: bytes to stream; close_mid_response: bytes promised
    location: str | None = None  # redirects: a path on this receiver or an absolute URL


def respond(
    status: int = 200,
    body: bytes | str = b"ok",
    *,
    headers: Mapping[str, str] | None = None,
    delay: float = 0.0,
) -> Reply:
    """A normal response, optionally after ``delay`` seconds."""
    raw = body.encode() if isinstance(body, str) else body
    return Reply(status=status, body=raw, headers=dict(headers or {}), delay=delay)


def hang(seconds: float = math.inf) -> Reply:
    """Say nothing for ``seconds`` (until the receiver stops by default), then 200."""
    return Reply(delay=seconds)


def close_without_response(*, delay: float = 0.0) -> Reply:
    """Read the request, then close the connection cleanly without a response."""
    return Reply(kind="close", delay=delay)


def reset_connection(*, delay: float = 0.0) -> Reply:
    """Read the request, then reset the connection (SO_LINGER 0: the peer gets RST)."""
    return Reply(kind="reset", delay=delay)


def close_mid_response(
    status: int = 200, *, promised: int = 1000, sent: bytes = b"partial"
) -> Reply:
    """Send the status, headers promising ``promised`` bytes and only ``sent``, then close."""
    return Reply(kind="close_mid_response", status=status, body=sent, size=promised)


def huge_body(size: int = 50 * 1024 * 1024, status: int = 200) -> Reply:
    """Stream a ``size``-byte body (stops early when the client goes away)."""
    return Reply(kind="huge_body", status=status, size=size)


def redirect(location: str, status: int = 301) -> Reply:
    """A redirect to ``location``: a path on this receiver or an absolute URL."""
    return Reply(status=status, body=b"", location=location)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the receiver saw it. Header names are lowercase."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    received_at: float  # time.monotonic()
    received_wall: dt.datetime  # aware, UTC
    verified: bool | None  # None when the receiver holds no secret
    verification_error: str | None
    client_port: int  # the same for requests over one kept-alive connection

    @property
    def params(self) -> dict[str, list[str]]:
        """The query string parsed into lists of values."""
        return parse_qs(self.query, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        """A header's value (joined with ", " if repeated), or None."""
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class Receiver:
    """A scripted HTTP(S) receiver on 127.0.0.1. Thread-safe; a context manager."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        secrets: Sequence[str] = (),
        default: Reply | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``secret``/``secrets`` make it verify each request's Standard Webhooks
        signature (verified when any secret matches); ``tls`` is a server-side context
        to serve HTTPS."""
        self._secrets = ([secret] if secret else []) + list(secrets)
        self._default = default or respond(200)
        self._tls = tls
        self._condition = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._scripts: dict[str, Script] = {}
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._streamed: list[int] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Receiver:
        """Bind and start serving; returns self."""
        if self._server is not None:
            raise RuntimeError("receiver already started")
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"receiver-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake hanging replies, close open connections, join threads."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        thread.join()
        with self._condition:
            connections = list(self._connections)
        for connection in connections:
            # Wakes handler threads blocked reading a kept-alive connection.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()  # joins the handler threads
        self._server = self._thread = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the OS chose."""
        if self._server is None:
            raise RuntimeError("receiver not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234``."""
        scheme = "https" if self._tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def url_for(self, path: str, *, host: str = "127.0.0.1") -> str:
        """The URL of ``path`` (may include a query), optionally under another host name
        (for tests with a fake resolver)."""
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{host}:{self.port}/{path.lstrip('/')}"

    # -- scripting -------------------------------------------------------------------

    def script(self, path: str, replies: Reply | Sequence[Reply] | Script) -> None:
        """Decide how requests to ``path`` are answered (replacing an earlier script)."""
        if isinstance(replies, Reply):
            replies = [replies]
        if callable(replies):
            script: Script = replies
        else:
            sequence = list(replies)
            if not sequence:
                raise ValueError("a script needs at least one reply")
            counter = [0]

            def script(_request: RecordedRequest) -> Reply:
                with self._condition:
                    index = min(counter[0], len(sequence) - 1)
                    counter[0] += 1
                return sequence[index]

        with self._condition:
            self._scripts[path] = script

    # -- recorded requests -----------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, oldest first (a copy)."""
        with self._condition:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The requests to ``path`` so far, oldest first."""
        with self._condition:
            return [request for request in self._requests if request.path == path]

    def clear(self) -> None:
        """Forget the recorded requests (scripts stay)."""
        with self._condition:
            self._requests.clear()

    def wait_for(
        self, count: int, timeout: float = 5.0, *, path: str | None = None
    ) -> list[RecordedRequest]:
        """Block until at least ``count`` requests (to ``path`` if given) arrived; return
        them. Raises AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                matching = [r for r in self._requests if path is None or r.path == path]
                if len(matching) >= count:
                    return matching
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    where = f" to {path}" if path else ""
                    raise AssertionError(
                        f"expected {count} request(s){where} within {timeout} s, "
                        f"got {len(matching)}"
                    )
                self._condition.wait(remaining)

    def wait_for_streamed(self, count: int = 1, timeout: float = 5.0) -> list[int]:
        """Block until ``count`` huge-body replies ended; return the bytes each wrote
        into the socket before the client went away (or all of them)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self._streamed) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{len(self._streamed)} of {count} streams ended")
                self._condition.wait(remaining)
            return list(self._streamed)

    async def wait_for_async(
        self, count: int, timeout: float = 5.0, *, path: str | None = None
    ) -> list[RecordedRequest]:
        """:meth:`wait_for` without blocking the event loop."""
        return await asyncio.to_thread(self.wait_for, count, timeout, path=path)

    # -- used by the handler ---------------------------------------------------------

    def _record(self, request: RecordedRequest) -> Reply:
        with self._condition:
            self._requests.append(request)
            self._condition.notify_all()
            script = self._scripts.get(request.path)
        return script(request) if script else self._default

    def _verify(self, body: bytes, headers: Mapping[str, str]) -> tuple[bool | None, str | None]:
        if not self._secrets:
            return None, None
        error = "no secret matched"
        for secret in self._secrets:
            try:
                Webhook(secret).verify(body, dict(headers), json_parse=False)
            except Exception as exc:  # the library raises several kinds
                error = f"{type(exc).__name__}: {exc}"
            else:
                return True, None
        return False, error


@contextlib.contextmanager
def black_hole() -> Iterator[str]:
    """A base URL on 127.0.0.1 that drops every SYN, as a dead host behind a firewall does:
    connecting neither succeeds nor is refused, it times out.

    A listening socket with a backlog of 0 that never accepts holds one connection in its
    accept queue; this one's own holds it, and Linux drops the SYNs of every later one.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    plug = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        host, port = listener.getsockname()
        plug.connect((host, port))
        yield f"http://{host}:{port}"
    finally:
        plug.close()
        listener.close()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # joined by server_close(), so stop() leaves nothing behind
    block_on_close = True
    # socketserver's default listen backlog is 5: a worker opening 50 connections at once
    # had some SYNs dropped and retried a second later, and attempts timed out.
    request_queue_size = 256

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup, which can stall; skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that vanish mid-exchange are part of the tests; stay quiet.
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        receiver = self.server.receiver
        self._raw = self.request
        # Headers and body go out in separate writes; without this, Nagle's algorithm
        # and the client's delayed ACK add ~40 ms to every response.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with receiver._condition:
            receiver._connections.add(self.request)
        if receiver._tls is not None:
            raw = self.request
            raw.settimeout(5)  # a client that never finishes the handshake must not hang us
            try:
                self.request = receiver._tls.wrap_socket(raw, server_side=True)
            finally:
                with receiver._condition:
                    receiver._connections.discard(raw)
            self.request.settimeout(None)
            with receiver._condition:
                receiver._connections.add(self.request)
        super().setup()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        receiver = self.server.receiver
        with receiver._condition:
            receiver._connections.discard(self.request)
        if self.request is not self._raw:
            # socketserver closes only the plain socket it accepted, not our TLS wrapper.
            self.request.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except OSError:
            self.close_connection = True

    def _handle(self) -> None:
        receiver = self.server.receiver
        body = self._read_body()
        parts = urlsplit(self.path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        verified, verification_error = receiver._verify(body, headers)
        reply = receiver._record(
            RecordedRequest(
                method=self.command,
                path=parts.path,
                query=parts.query,
                headers=headers,
                body=body,
                received_at=time.monotonic(),
                received_wall=dt.datetime.now(dt.UTC),
                verified=verified,
                verification_error=verification_error,
                client_port=int(self.client_address[1]),
            )
        )
        delay = None if math.isinf(reply.delay) else reply.delay
        if reply.delay and receiver._stopping.wait(delay):
            self._abort()
            return
        if reply.kind == "close":
            self.close_connection = True
        elif reply.kind == "reset":
            self._abort()
        elif reply.kind == "close_mid_response":
            self._send_head(reply.status, reply.headers, reply.size)
            self.wfile.write(reply.body)
            self.wfile.flush()
            self.close_connection = True
        elif reply.kind == "huge_body":
            self._send_head(reply.status, reply.headers, reply.size)
            self._stream(reply.size)
        else:
            headers = dict(reply.headers)
            if reply.location is not None:
                location = reply.location
                if "://" not in location:
                    location = receiver.url_for(location)
                headers["Location"] = location
            self._send_head(reply.status, headers, len(reply.body))
            self.wfile.write(reply.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_head(self, status: int, headers: Mapping[str, str], length: int) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _stream(self, size: int) -> None:
        receiver = self.server.receiver
        chunk = b"x" * _CHUNK
        sent = 0
        try:
            while sent < size and not receiver._stopping.is_set():
                piece = chunk[: min(_CHUNK, size - sent)]
                self.wfile.write(piece)
                sent += len(piece)
        except OSError:
            pass
        self.close_connection = True
        with receiver._condition:
            receiver._streamed.append(sent)
            receiver._condition.notify_all()

    def _abort(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        receiver = self.server.receiver
        with receiver._condition:
            receiver._connections.discard(self.request)
        self.request.close()


def unused_port() -> int:
    """A local TCP port nothing listens on (for "connection refused")."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class TlsContexts:
    """A throwaway CA and a server certificate for some host names."""

    server: ssl.SSLContext  # serves the certificate (give it to Receiver(tls=...))
    client: ssl.SSLContext  # trusts the CA and checks host names


def tls_contexts(hostnames: Sequence[str]) -> TlsContexts:
    """Make a CA and a certificate valid for ``hostnames`` only (DNS names, no IPs)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "receivers test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in hostnames]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        # load_cert_chain reads files only.
        cert_file, key_file = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(
        cadata=ca_cert.public_bytes(serialization.Encoding.PEM).decode()
    )
    return TlsContexts(server=server, client=client)
