"""A network the fault tests make and break: a server's namespace behind a router.

:class:`Namespace` creates a network namespace for a server and one for a router between
it and the test's own namespace, joined by veth pairs.
:meth:`Namespace.black_hole` puts a zero-length queue on the router's devices, so every
packet between the two ends is dropped silently, in both directions: no refusal, no
reset, no ICMP, and no local drop either end's kernel would notice; what a dead link or a
dropping firewall looks like to TCP. :meth:`Namespace.restore` removes them, and the
connections that survived carry on (their retransmissions get through). (Dropping on an
end's own device is no black hole: TCP sees its own sends fail and gives up early.)

:class:`NamespacedPostgres` is the fault harness's owned PostgreSQL, started inside the
namespace and listening on its address only, so the service reaches it across the veth.

Creating namespaces needs root and the ``ip`` and ``tc`` tools:
``bench.namespace.unavailable_reason`` says why a test must be skipped.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from app.run.postgres_cluster import LocalCluster
from tests.acceptance.processes import free_port
from tests.faults.harness import OwnedPostgres

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
# A queue of length zero on a router's device: everything it would send is dropped.
DROP_ALL = ("root", "pfifo", "limit", "0")
NETNS_DIR = Path("/run/netns")


class Namespace:
    """A server's network namespace, reached from here through a router namespace.

    this namespace --veth-- router namespace --veth-- server namespace

    The router forwards between two /30s the test picks from 10.200.0.0/16 (nothing
    else is addressed; nothing leaves the machine). The black hole is in the router, so
    neither end's kernel drops anything itself: both just stop hearing from the other.
    """

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name = f"webhooks-{tag}-db"
        self.router = f"webhooks-{tag}-rt"
        # (this end, its router end) and (the router's server end, the server's end);
        # device names hold at most 15 characters
        self.devices = (f"whk{tag}a", f"whk{tag}b", f"whk{tag}c", f"whk{tag}d")
        base = f"10.200.{secrets.randbelow(256)}"
        last = secrets.randbelow(32) * 8
        self.network = f"{base}.{last}/30"  # this end and the router
        self.outer_address = f"{base}.{last + 1}"
        self.router_outer_address = f"{base}.{last + 2}"
        self.router_inner_address = f"{base}.{last + 5}"
        self.inner_address = f"{base}.{last + 6}"
        self.inner_network = f"{base}.{last + 4}/30"

    def create(self) -> None:
        """Make both namespaces, the veth pairs, addresses and routes; fails if any step does."""
        outer, router_outer, router_inner, inner = self.devices
        router = ("ip", "netns", "exec", self.router)
        server = ("ip", "netns", "exec", self.name)
        steps = [
            ("ip", "netns", "add", self.router),
            ("ip", "netns", "add", self.name),
            ("ip", "link", "add", outer, "type", "veth", "peer", "name", router_outer),
            ("ip", "link", "set", router_outer, "netns", self.router),
            ("ip", "link", "add", router_inner, "type", "veth", "peer", "name", inner),
            ("ip", "link", "set", router_inner, "netns", self.router),
            ("ip", "link", "set", inner, "netns", self.name),
            ("ip", "addr", "add", f"{self.outer_address}/30", "dev", outer),
            ("ip", "link", "set", outer, "up"),
            ("ip", "route", "add", self.inner_network, "via", self.router_outer_address),
            (*router, "ip", "addr", "add", f"{self.router_outer_address}/30", "dev", router_outer),
            (*router, "ip", "addr", "add", f"{self.router_inner_address}/30", "dev", router_inner),
            (*router, "ip", "link", "set", router_outer, "up"),
            (*router, "ip", "link", "set", router_inner, "up"),
            (*router, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"),
            (*server, "ip", "addr", "add", f"{self.inner_address}/30", "dev", inner),
            (*server, "ip", "link", "set", inner, "up"),
            (*server, "ip", "link", "set", "lo", "up"),
            (*server, "ip", "route", "add", "default", "via", self.router_inner_address),
        ]
        for step in steps:
            _run(step)

    def delete(self) -> None:
        """Remove both namespaces (the veth pairs go with them) and our route."""
        for command in (
            ("ip", "netns", "delete", self.name),
            ("ip", "netns", "delete", self.router),
            ("ip", "link", "delete", self.devices[0]),
        ):
            subprocess.run(list(command), capture_output=True, check=False, timeout=30)

    def black_hole(self) -> None:
        """The router drops every packet it would forward, both ways, silently."""
        for device in self.devices[1:3]:
            _run(self._in_router("tc", "qdisc", "replace", "dev", device, *DROP_ALL))

    def restore(self) -> None:
        """The router forwards again."""
        for device in self.devices[1:3]:
            _run(self._in_router("tc", "qdisc", "delete", "dev", device, "root"))

    def _in_router(self, *command: str) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.router, *command)

    def run_inside(self, function: Callable[[], T]) -> T:
        """Call ``function`` in a thread that entered the server's namespace: the processes
        it starts (a server, say) live there, while the rest of this process stays here."""
        outcome: list[T] = []
        failure: list[BaseException] = []

        def enter_and_call() -> None:
            try:
                descriptor = os.open(NETNS_DIR / self.name, os.O_RDONLY)
                try:
                    libc = ctypes.CDLL(None, use_errno=True)
                    if libc.setns(descriptor, CLONE_NEWNET) != 0:
                        error = ctypes.get_errno()
                        raise OSError(error, f"setns: {os.strerror(error)}")
                finally:
                    os.close(descriptor)
                outcome.append(function())
            except BaseException as error:  # handed to the caller's thread
                failure.append(error)

        thread = threading.Thread(target=enter_and_call, name=f"in-{self.name}")
        thread.start()
        thread.join()
        if failure:
            raise failure[0]
        return outcome[0]


class NamespacedPostgres(OwnedPostgres):
    """The harness's owned PostgreSQL, inside ``namespace`` on its address."""

    def __init__(self, root: Path, namespace: Namespace) -> None:
        super().__init__(root)
        self.namespace = namespace
        self.cluster = LocalCluster(
            root / "data", port=free_port(), durable=False, host=namespace.inner_address
        )

    def start(self) -> None:
        first = not (self.cluster.data_dir / "PG_VERSION").exists()
        self.namespace.run_inside(self.cluster.start)
        if first:
            # initdb trusts loopback only; the service connects from the veth's far end.
            with (self.cluster.data_dir / "pg_hba.conf").open("a", encoding="utf-8") as hba:
                hba.write(f"host all all {self.namespace.network} trust\n")
            self.cluster.stop()
            self.namespace.run_inside(self.cluster.start)


def _run(command: tuple[str, ...]) -> None:
    result = subprocess.run(list(command), capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
