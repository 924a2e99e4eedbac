"""A raw-socket HTTP receiver: writes exactly the bytes a test scripts, framing errors
included, which http.server would tidy up or refuse to send.

    def sloppy_204(connection: RawConnection, request: RawRequest) -> None:
        connection.send(b"HTTP/1.1 204 No Content\\r\\nContent-Length: 2\\r\\n\\r\\nok")

    with RawReceiver({"/hook": sloppy_204}) as receiver:
        ... deliver to receiver.url_for("/hook") ...
        assert [r.connection for r in receiver.requests] == [0, 1]

Connections are kept alive: a connection serves requests until the client closes it.
A handler may also wait for the next request on its connection (``next_request``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType


@dataclass(frozen=True)
class RawRequest:
    """One request as read off the socket."""

    method: str
    path: str
    body: bytes
    connection: int  # 0 for the first connection accepted, 1 for the next...


Handler = Callable[["RawConnection", RawRequest], None]

OK_200 = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine"


class RawConnection:
    """The server side of one accepted connection."""

    def __init__(self, receiver: RawReceiver, sock: socket.socket, index: int) -> None:
        self._receiver = receiver
        self._sock = sock
        self._index = index
        self._buffer = b""

    def send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def next_request(self, timeout: float) -> RawRequest | None:
        """The next request on this connection, or None when it was closed or none came
        within ``timeout`` seconds."""
        self._sock.settimeout(timeout)
        try:
            return self._read_request()
        except (TimeoutError, OSError):
            return None
        finally:
            self._sock.settimeout(None)

    def serve(self) -> None:
        while True:
            try:
                request = self._read_request()
            except OSError:
                return
            if request is None:
                return
            self._receiver._handle(self, request)

    def _read_request(self) -> RawRequest | None:
        while b"\r\n\r\n" not in self._buffer:
            chunk = self._sock.recv(65536)
            if not chunk:
                return None
            self._buffer += chunk
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        while len(self._buffer) < length:
            chunk = self._sock.recv(65536)
            if not chunk:
                return None
            self._buffer += chunk
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        request = RawRequest(method, target.split("?", 1)[0], body, self._index)
        self._receiver._record(request)
        return request


class RawReceiver:
    """Listens on 127.0.0.1; each path's handler answers with raw bytes."""

    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self._handlers = dict(handlers)
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._lock = threading.Condition()
        self._requests: list[RawRequest] = []
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener.settimeout(0.05)  # accept() wakes up to notice the stop
        self._stopping = threading.Event()
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def url_for(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    @property
    def requests(self) -> list[RawRequest]:
        with self._lock:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RawRequest]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} request(s), got {self._requests}")
                self._lock.wait(remaining)
            return list(self._requests)

    def __enter__(self) -> RawReceiver:
        self._accepting.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self._accepting.join(timeout=5)
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        index = 0
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = RawConnection(self, sock, index)
            index += 1
            thread = threading.Thread(target=connection.serve, daemon=True)
            with self._lock:
                self._sockets.append(sock)
                self._threads.append(thread)
            thread.start()

    def _record(self, request: RawRequest) -> None:
        with self._lock:
            self._requests.append(request)
            self._lock.notify_all()

    def _handle(self, connection: RawConnection, request: RawRequest) -> None:
        handler = self._handlers.get(request.path)
        if handler is None:
            connection.send(OK_200)
        else:
            handler(connection, request)
