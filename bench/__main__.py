"""``python -m bench``: the whole benchmark in one command (see bench/suite.py)."""

from __future__ import annotations

import argparse
import resource
from pathlib import Path

from bench.config import FULL, SMOKE
from bench.suite import run

PHASES = "ABCSDEFGHIJKLNT"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark PlanOmatic Webhooks: ceilings, throughput, latency, memory.",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, about a minute")
    parser.add_argument(
        "--rows", type=int, default=None, help="deliveries generated for F (default 1,000,000)"
    )
    parser.add_argument("--events", type=int, default=None, help="events per C run (2,000)")
    parser.add_argument(
        "--only", default=PHASES, help="phases to run, e.g. --only AB (default: all)"
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path(__file__).with_name("results"),
        help="where <timestamp>.json and latest.json go (default bench/results)",
    )
    args = parser.parse_args(argv)
    sizes = (SMOKE if args.smoke else FULL).with_rows(args.rows)
    if args.events is not None:
        sizes = sizes.with_events(args.events)
    phases = [phase for phase in args.only.upper() if phase in PHASES]
    # Up to a thousand connections in flight in phase H (worker and receiver).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    run(sizes, phases, args.output_dir)


if __name__ == "__main__":
    main()
