"""``python -m bench.delay_relay``: a TCP relay that holds every chunk for a fixed delay.

Phase N's stand-in for ``tc netem delay`` on kernels built without it (``sch_netem``):
each chunk read from either side is forwarded to the other ``--delay-ms`` later, in order,
so a request and its answer each wait the delay once, as netem on both ends of a link
does. One thread, ``select`` (microsecond timeouts; epoll's are whole milliseconds). It
costs CPU that netem would not, so phase N also runs it with no delay and compares the
two runs, not a run with the relay against one without.
"""

from __future__ import annotations

import argparse
import collections
import select
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 65536
# A direction stops reading while this much waits to be sent: backpressure, bounded memory.
HIGH_WATER = 4 * 1024 * 1024


@dataclass(eq=False)
class Direction:
    """Bytes from ``source`` to ``target``: held until their time, then sent."""

    source: socket.socket
    target: socket.socket
    held: collections.deque[tuple[float, bytes]] = field(default_factory=collections.deque)
    due: bytearray = field(default_factory=bytearray)
    closed: bool = False

    def waiting(self) -> int:
        return len(self.due) + sum(len(chunk) for _, chunk in self.held)


def relay(listener: socket.socket, target: tuple[str, int], delay: float) -> None:
    """Serve ``listener`` forever, each connection relayed to ``target`` with ``delay`` s."""
    pairs: list[tuple[Direction, Direction]] = []
    while True:
        now = time.monotonic()
        for direction in (direction for pair in pairs for direction in pair):
            _send_due(direction, now)
        # A connection ends once either side closed and what was read from it was sent.
        for pair in [pair for pair in pairs if any(_finished(d) for d in pair)]:
            pairs.remove(pair)
            for end in (pair[0].source, pair[1].source):
                end.close()
        directions = [direction for pair in pairs for direction in pair]
        heads = [d.held[0][0] for d in directions if d.held]
        timeout = max(0.0, min(heads) - time.monotonic()) if heads else None
        readers = [listener] + [
            d.source for d in directions if not d.closed and d.waiting() < HIGH_WATER
        ]
        writers = [d.target for d in directions if d.due]
        readable, _, _ = select.select(readers, writers, [], timeout)
        for ready in readable:
            if ready is listener:
                pairs.append(_accept(listener, target))
            else:
                for direction in directions:
                    if direction.source is ready:
                        _receive(direction, delay)


def _accept(listener: socket.socket, target: tuple[str, int]) -> tuple[Direction, Direction]:
    client, _ = listener.accept()
    upstream = socket.create_connection(target)
    for end in (client, upstream):
        end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        end.setblocking(False)
    return Direction(client, upstream), Direction(upstream, client)


def _receive(direction: Direction, delay: float) -> None:
    try:
        chunk = direction.source.recv(CHUNK)
    except BlockingIOError:
        return
    except OSError:
        chunk = b""
    if chunk:
        direction.held.append((time.monotonic() + delay, chunk))
    else:
        direction.closed = True


def _send_due(direction: Direction, now: float) -> None:
    while direction.held and direction.held[0][0] <= now:
        direction.due += direction.held.popleft()[1]
    if not direction.due:
        return
    try:
        sent = direction.target.send(direction.due)
    except BlockingIOError:
        return
    except OSError:
        direction.closed = True
        sent = len(direction.due)
    del direction.due[:sent]


def _finished(direction: Direction) -> bool:
    return direction.closed and not direction.held and not direction.due


def main() -> None:
    parser = argparse.ArgumentParser(description="TCP relay adding a fixed delay each way.")
    parser.add_argument("--listen", default="127.0.0.1")
    parser.add_argument("--target-host", required=True)
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.listen, 0))
    listener.listen(128)
    args.port_file.write_text(f"{listener.getsockname()[1]}\n", encoding="ascii")
    relay(listener, (args.target_host, args.target_port), args.delay_ms / 1000)


if __name__ == "__main__":
    main()
