"""The benchmark's webhook receiver: a minimal HTTP/1.1 server in a process of its own.

Run as ``python -m bench.receiver --port-file F``; it writes the port it listens on (on
127.0.0.1) to F once it is ready. Plain asyncio protocols, no framework, so the receiver
is never what limits a measurement. The path picks the behaviour:

- ``/ok``: 200 with no body, counted only
- ``/record``: 200; records arrival time, ``webhook-id``, ``webhook-attempt`` and subject
- ``/fail-first``: 500 to attempt 1, 200 afterwards; records like ``/record``
- ``/slow?ms=N``: waits N ms, then 200; tracks the most requests in flight at once
- ``/v1/traces``: 200 with no body, counted apart (phase T's OTLP/HTTP exports, dropped)
- ``GET /_stats``: counters and records as JSON; ``POST /_reset`` clears them
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, urlsplit

from app.core import event_loop

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
FAIL = b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
MAX_HEADER_BYTES = 64 * 1024


class Stats:
    """What the receiver saw since the last reset."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.otlp_requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        # [arrival (time.time()), webhook-id, attempt, subject]
        self.records: list[tuple[float, str, int, str | None]] = []

    def as_json(self) -> bytes:
        return json.dumps(
            {
                "requests": self.requests,
                "otlp_requests": self.otlp_requests,
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "records": self.records,
            }
        ).encode()


class ReceiverProtocol(asyncio.Protocol):
    """One keep-alive connection: parses requests one after another and answers each."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's does not subclass asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._handle_buffered()

    def _handle_buffered(self) -> None:
        while self.transport is not None:
            request = self._take_request()
            if request is None:
                return
            method, target, headers, body = request
            arrival = time.time()
            path = target.split("?", 1)[0]
            if path == "/slow":
                self._answer_slowly(target)
                return
            self.transport.write(self._answer(method, path, arrival, headers, body))

    def _take_request(self) -> tuple[str, str, dict[str, str], bytes] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEADER_BYTES and self.transport is not None:
                self.transport.close()
            return None
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(self.buffer) < end + 4 + length:
            return None
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        return method, target, headers, body

    def _answer(
        self, method: str, path: str, arrival: float, headers: dict[str, str], body: bytes
    ) -> bytes:
        stats = self.stats
        if path == "/ok":
            stats.requests += 1
            return OK
        if path in ("/record", "/fail-first"):
            stats.requests += 1
            attempt = int(headers.get("webhook-attempt", "1"))
            stats.records.append((arrival, headers.get("webhook-id", ""), attempt, _subject(body)))
            return FAIL if path == "/fail-first" and attempt == 1 else OK
        if path == "/v1/traces":
            stats.otlp_requests += 1
            return OK
        if path == "/_stats":
            data = stats.as_json()
            head = (
                f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(data)}"
            )
            return head.encode() + b"\r\n\r\n" + data
        if path == "/_reset" and method == "POST":
            stats.reset()
            return OK
        return NOT_FOUND

    def _answer_slowly(self, target: str) -> None:
        query = parse_qs(urlsplit(target).query)
        delay = float(query.get("ms", ["1000"])[0]) / 1000
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        self.busy = True

        def done() -> None:
            stats.in_flight -= 1
            self.busy = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(OK)
                self._handle_buffered()

        asyncio.get_running_loop().call_later(delay, done)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def _subject(body: bytes) -> str | None:
    try:
        value = json.loads(body).get("subject")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


async def serve(port: int, port_file: Path) -> None:
    stats = Stats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: ReceiverProtocol(stats), "127.0.0.1", port, backlog=4096, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    # Written whole, then renamed, so the parent never reads half a number.
    partial = port_file.with_suffix(".partial")
    partial.write_text(f"{bound}\n", encoding="ascii")
    partial.replace(port_file)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark webhook receiver (127.0.0.1 only).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        event_loop.run(serve(args.port, args.port_file))


if __name__ == "__main__":
    main()
