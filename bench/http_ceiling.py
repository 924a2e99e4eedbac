"""A: the HTTP ceiling. How many POSTs per second ``Transport.send`` (the worker's own
sender, pinned and checked) gets out of one process at the worker's concurrency, with
the exact bytes and headers of a delivery.

``python -m bench.http_ceiling`` is one client process; the phase starts one, then two
of them at once (as many as the worker processes of C), and adds up their rates.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.core import event_loop
from app.core.event_body import delivery_body
from app.core.ids import new_id
from app.core.signing import generate_secret, webhook_headers
from app.delivery.transport import Transport
from bench.processes import PYTHON, Child, environment
from bench.stats import rate
from bench.suite import Bench
from bench.tenants import PAYLOAD_JSON, WEBHOOK

WARM_UP_REQUESTS = 100


async def send_many(url: str, requests: int, concurrency: int, start_at: float) -> dict[str, Any]:
    """Send ``requests`` POSTs with ``concurrency`` in flight, starting at ``start_at``."""
    body = delivery_body(new_id(), WEBHOOK, "bench", "ord_12345", datetime.now(UTC), PAYLOAD_JSON)
    # A webhook id of the form fan_out_event (sql/queries/events.sql) gives each delivery.
    webhook_id = "msg_" + new_id().hex
    headers = webhook_headers([generate_secret()], webhook_id, int(time.time()), body, attempt=1)
    failures = 0
    async with Transport(
        timeout_seconds=15.0,
        allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),),
        max_connections=concurrency + 10,  # as app.delivery.worker.build_transport
    ) as transport:
        for _ in range(WARM_UP_REQUESTS):
            await transport.send(url, body, headers)
        remaining = requests

        async def client() -> None:
            nonlocal remaining, failures
            while remaining > 0:
                remaining -= 1
                outcome = await transport.send(url, body, headers)
                failures += not outcome.succeeded

        await asyncio.sleep(max(0.0, start_at - time.time()))
        started = time.time()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        finished = time.time()
    return {"requests": requests, "failures": failures, "started": started, "finished": finished}


async def run(bench: Bench) -> dict[str, Any]:
    sizes = bench.sizes
    url = bench.receiver.url("/ok")
    results = []
    for processes in (1, 2):
        start_at = time.time() + 3.0  # every client imported and warmed up by then
        children = []
        for index in range(processes):
            result_file = bench.work_dir / f"http-ceiling-{processes}-{index}.json"
            argv = [PYTHON, "-m", "bench.http_ceiling", "--url", url]
            argv += [
                "--requests",
                str(sizes.http_requests),
                "--concurrency",
                str(sizes.concurrency),
            ]
            argv += ["--start-at", str(start_at), "--result-file", str(result_file)]
            name = f"http-client-{processes}-{index}"
            children.append(
                (
                    Child(name, argv, environment(), bench.work_dir / f"{name}.log"),
                    result_file,
                )
            )
        outcomes = []
        for child, result_file in children:
            if await asyncio.to_thread(child.popen.wait) != 0:
                raise RuntimeError(f"{child.name} failed\n{child.tail()}")
            outcomes.append(json.loads(result_file.read_text()))
        total = sum(outcome["requests"] for outcome in outcomes)
        seconds = max(o["finished"] for o in outcomes) - min(o["started"] for o in outcomes)
        results.append(
            {
                "processes": processes,
                "concurrency": sizes.concurrency,
                "requests": total,
                "failures": sum(outcome["failures"] for outcome in outcomes),
                "seconds": round(seconds, 2),
                "per_second": rate(total, seconds),
            }
        )
        bench.log(f"[bench] A {processes} process(es): {results[-1]['per_second']} requests/s")
    return {"title": "HTTP ceiling (Transport.send to the receiver)", "runs": results}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One HTTP ceiling client process.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--start-at", type=float, required=True)
    parser.add_argument("--result-file", type=Path, required=True)
    args = parser.parse_args(argv)
    if not args.url.startswith("http://127.0.0.1:"):
        sys.exit("the HTTP ceiling only ever sends to 127.0.0.1")
    result = event_loop.run(send_many(args.url, args.requests, args.concurrency, args.start_at))
    args.result_file.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
