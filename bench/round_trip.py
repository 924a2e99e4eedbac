"""``python -m bench.round_trip URL``: the median round trip of ``SELECT 1`` to URL, in ms.

Phase N runs it inside the worker's namespace to show the delay it measures under.
"""

from __future__ import annotations

import statistics
import sys
import time

import psycopg

from bench.queries import BENCH_QUERIES

SAMPLES = 100


def main() -> None:
    with psycopg.connect(sys.argv[1], autocommit=True) as connection:
        timings = []
        for _ in range(SAMPLES):
            started = time.perf_counter()
            connection.execute(BENCH_QUERIES["ping"]).fetchone()
            timings.append(time.perf_counter() - started)
    print(f"{statistics.median(timings) * 1000:.3f}")


if __name__ == "__main__":
    main()
