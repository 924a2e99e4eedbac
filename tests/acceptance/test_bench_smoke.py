"""The benchmark suite's smoke run: ``python -m bench --smoke`` as a user would start it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.tenants import PAYLOAD_JSON

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = "ABCDEFGHIJKLNST"
BUDGET_SECONDS = 60  # what the smoke mode promises; enforced with room for a busy machine


@pytest.mark.slow
@pytest.mark.timeout(BUDGET_SECONDS * 3)
def test_the_smoke_benchmark_runs_every_section_and_writes_its_json(tmp_path: Path) -> None:
    # given an output directory of the test's own (bench/results stays untouched)
    output = tmp_path / "results"

    # when the smoke benchmark runs
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--output-dir", str(output)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BUDGET_SECONDS * 3,
        check=False,
    )
    elapsed = time.monotonic() - started

    # then it succeeds, prints the table, and writes the same report twice
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    assert "| Target | Value | Goal | Met |" in completed.stdout
    latest = json.loads((output / "latest.json").read_text(encoding="utf-8"))
    stamped = [path for path in output.glob("*.json") if path.name != "latest.json"]
    assert len(stamped) == 1
    assert json.loads(stamped[0].read_text(encoding="utf-8")) == latest
    # with every section (A to L, N, S, T), and the targets evaluated
    assert latest["mode"] == "smoke"
    assert sorted(latest["sections"]) == list(SECTIONS)
    assert latest["targets"]
    # and, on its own cluster, the worker's statements counted (pg_stat_statements loaded)
    if latest["machine"]["database"] != "DATABASE_URL":
        assert latest["sections"]["S"]["per_delivery"] > 0
    assert all(isinstance(target["met"], bool) for target in latest["targets"])
    # and the size of the payload every phase published, which moves its figures
    assert latest["payload_bytes"] == len(PAYLOAD_JSON)
    assert f"{len(PAYLOAD_JSON):,}-byte payloads" in completed.stdout
    print(f"smoke benchmark took {elapsed:.0f} s")
