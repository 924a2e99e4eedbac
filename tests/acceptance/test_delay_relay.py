"""bench/delay_relay.py, phase N's delay where the kernel has no netem: bytes pass intact
and in order, each way held for the delay asked."""

from __future__ import annotations

import socket
import socketserver
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.processes import Child, environment

DELAY_MS = 20.0  # far above a loaded machine's scheduling noise


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def relay_to(port: int, delay_ms: float, tmp_path: Path) -> tuple[Child, int]:
    port_file = tmp_path / f"relay-{delay_ms:g}.port"
    child = Child(
        "relay",
        [
            *(sys.executable, "-m", "bench.delay_relay", "--port-file", str(port_file)),
            *("--target-host", "127.0.0.1", "--target-port", str(port)),
            *("--delay-ms", f"{delay_ms:g}"),
        ],
        environment(),
        tmp_path / "relay.log",
    )
    deadline = time.monotonic() + 20
    while not port_file.exists() or not port_file.read_text().strip():
        child.check()
        assert time.monotonic() < deadline, child.tail()
        time.sleep(0.02)
    return child, int(port_file.read_text().strip())


def round_trips(port: int, count: int) -> list[float]:
    """Seconds per echo of a small message through ``port``, and the bytes checked."""
    timings = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for number in range(count):
            message = f"message {number};".encode()
            started = time.perf_counter()
            connection.sendall(message)
            received = b""
            while len(received) < len(message):
                received += connection.recv(65536)
            timings.append(time.perf_counter() - started)
            assert received == message
    return timings


def test_every_byte_passes_in_order_each_way(echo: int, tmp_path: Path) -> None:
    # Given a relay with no delay in front of an echo server
    relay, port = relay_to(echo, 0.0, tmp_path)
    try:
        # When 8 MB go through it and come back, read only after a while: the socket
        # buffers fill, so the relay meets sends that take part of what it has
        payload = bytes(range(256)) * 32768
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            sender = threading.Thread(target=connection.sendall, args=(payload,))
            sender.start()
            time.sleep(0.5)
            received = bytearray()
            while len(received) < len(payload):
                chunk = connection.recv(65536)
                assert chunk, "the relay closed the connection early"
                received += chunk
            sender.join()
        # Then it comes back whole and in order
        assert bytes(received) == payload
    finally:
        relay.stop()


def test_a_round_trip_waits_the_delay_each_way(echo: int, tmp_path: Path) -> None:
    # Given a relay holding every chunk 20 ms
    relay, port = relay_to(echo, DELAY_MS, tmp_path)
    try:
        # When small messages are echoed through it one at a time
        timings = round_trips(port, 10)
    finally:
        relay.stop()

    # Then each round trip took both delays, and not much more
    assert min(timings) >= 2 * DELAY_MS / 1000
    assert statistics.median(timings) < 2 * DELAY_MS / 1000 + 0.015
