"""A network namespace for phase N: a worker's own network, joined to this one by a veth
pair, with a delay added on both ends.

this namespace (PostgreSQL listens on ``outer_address``) --veth-- the worker's namespace

Addresses are a /30 the benchmark picks from 10.201.0.0/16; nothing else is addressed and
nothing leaves the machine. ``tc qdisc ... netem delay`` on both ends delays every packet
each way, so a round trip between the worker and PostgreSQL costs twice the delay more.
Creating it needs root and the ``ip`` and ``tc`` tools (:func:`unavailable_reason`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess


def unavailable_reason() -> str | None:
    """Why a namespace cannot be made here, or None (creating one may still fail)."""
    if os.name != "posix" or os.geteuid() != 0:
        return "needs root to create a network namespace"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"needs the `{tool}` tool (iproute2)"
    return None


class WorkerNamespace:
    """The namespace, its veth pair and addresses; :meth:`delete` removes all of them."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name = f"webhooks-bench-{tag}"
        # device names hold at most 15 characters
        self.outer_device, self.inner_device = f"wbn{tag}o", f"wbn{tag}i"
        base = f"10.201.{secrets.randbelow(256)}"
        last = secrets.randbelow(64) * 4
        self.network = f"{base}.{last}/30"
        self.outer_address = f"{base}.{last + 1}"
        self.inner_address = f"{base}.{last + 2}"

    @property
    def prefix(self) -> tuple[str, ...]:
        """What runs a command inside the namespace."""
        return ("ip", "netns", "exec", self.name)

    def create(self) -> None:
        """Make the namespace, the veth pair, addresses and links; fails if any step does
        (whatever was made is left for :meth:`delete`)."""
        steps = [
            ("ip", "netns", "add", self.name),
            (
                "ip",
                "link",
                "add",
                self.outer_device,
                "type",
                "veth",
                "peer",
                "name",
                self.inner_device,
            ),
            ("ip", "link", "set", self.inner_device, "netns", self.name),
            ("ip", "addr", "add", f"{self.outer_address}/30", "dev", self.outer_device),
            ("ip", "link", "set", self.outer_device, "up"),
            (
                *self.prefix,
                "ip",
                "addr",
                "add",
                f"{self.inner_address}/30",
                "dev",
                self.inner_device,
            ),
            (*self.prefix, "ip", "link", "set", self.inner_device, "up"),
            (*self.prefix, "ip", "link", "set", "lo", "up"),
        ]
        for step in steps:
            _run(step)

    def delay(self, delay_ms: float) -> None:
        """Every packet leaving either end waits ``delay_ms`` (0: none)."""
        for device, prefix in ((self.outer_device, ()), (self.inner_device, self.prefix)):
            if delay_ms > 0:
                netem = ("root", "netem", "delay", f"{delay_ms:g}ms")
                _run((*prefix, "tc", "qdisc", "replace", "dev", device, *netem))
            else:
                subprocess.run(  # noqa: S603 (our own argv, no shell)
                    [*prefix, "tc", "qdisc", "del", "dev", device, "root"],
                    capture_output=True,
                    check=False,
                    timeout=30,
                )

    def delete(self) -> None:
        """Remove the namespace (its end of the veth pair goes with it, and so the pair)."""
        for command in (
            ("ip", "netns", "delete", self.name),
            ("ip", "link", "delete", self.outer_device),
        ):
            subprocess.run(  # noqa: S603 (our own argv, no shell)
                list(command), capture_output=True, check=False, timeout=30
            )


def _run(command: tuple[str, ...]) -> None:
    result = subprocess.run(  # noqa: S603 (our own argv, no shell)
        list(command), capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
