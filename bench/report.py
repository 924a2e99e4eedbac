"""The benchmark's report: targets met or missed, a Markdown table, the JSON files."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Result = dict[str, Any]

# Targets of the issue; reported, never asserted.
QUEUE_SHARE = 0.7  # C >= 0.7 * B
LATENCY_P50_MS = 10.0
LATENCY_P99_MS = 50.0
RETRY_P99_MS = 1000.0
API_P99_MS = 30.0
FANOUT_P99_MS = 50.0
FILTERED_FANOUT_RATIO = 1.5  # G: p99 with a content filter on every subscription / without
PEAK_RSS_MB = 250.0
PORTAL_FIRST_ROW_MS = 1000.0  # L: issue 15, the delivery log's first page within 1 s
FETCH_SLACK_BUFFERS = 20  # I: a fetch may read this much more with a backlog than without
STATEMENTS_PER_DELIVERY = 3  # S: worker-side statements per first-attempt delivery


def _by_processes(section: Result | None) -> dict[int, float]:
    if not section:
        return {}
    return {run["processes"]: run["per_second"] for run in section["runs"]}


def _batched(run: Result) -> str:
    """How a C run published, when not one event per publishEvent."""
    batch = run.get("publish_batch", 1)
    return "" if batch == 1 else f", publishEvents x {batch}"


def targets(sections: dict[str, Result]) -> list[Result]:
    """Every target with its measured value and whether it was met."""
    found: list[Result] = []

    def add(name: str, value: float, target: str, met: bool) -> None:
        found.append({"target": name, "value": value, "goal": target, "met": bool(met)})

    queue = _by_processes(sections.get("B"))
    for run in sections.get("C", {}).get("runs", []):
        ceiling = queue.get(run["workers"])
        if ceiling:
            share = run["per_second"] / ceiling
            add(
                f"C/B fan-out {run['fanout']}, {run['workers']} worker(s){_batched(run)}",
                round(share, 2),
                f">= {QUEUE_SHARE}",
                share >= QUEUE_SHARE,
            )
    statements = sections.get("S", {}).get("per_delivery")
    if statements is not None:
        add(
            "S statements per first-attempt delivery",
            statements,
            f"<= {STATEMENTS_PER_DELIVERY}",
            statements <= STATEMENTS_PER_DELIVERY,
        )
    if "D" in sections:
        latency = sections["D"]["latency"]
        add(
            "D latency p50 (ms)",
            latency["p50_ms"],
            f"<= {LATENCY_P50_MS:g}",
            latency["p50_ms"] <= LATENCY_P50_MS,
        )
        add(
            "D latency p99 (ms)",
            latency["p99_ms"],
            f"<= {LATENCY_P99_MS:g}",
            latency["p99_ms"] <= LATENCY_P99_MS,
        )
    if "E" in sections:
        p99 = sections["E"]["lateness"]["p99_ms"]
        add("E retry lateness p99 (ms)", p99, f"<= {RETRY_P99_MS:g}", p99 <= RETRY_P99_MS)
    if "F" in sections:
        for shape in ("deliveries_first_50", "delivery_by_id"):
            p99 = sections["F"]["latency"][shape]["p99_ms"]
            add(f"F {shape} p99 (ms)", p99, f"<= {API_P99_MS:g}", p99 <= API_P99_MS)
        add("F seq scans", int(sections["F"]["seq_scan"]), "none", not sections["F"]["seq_scan"])
    if "G" in sections:
        p99 = sections["G"]["latency"]["p99_ms"]
        add(
            "G publish p99, 100 subscriptions (ms)",
            p99,
            f"<= {FANOUT_P99_MS:g}",
            p99 <= FANOUT_P99_MS,
        )
        ratio = sections["G"].get("filtered_p99_ratio")
        if ratio is not None:
            add(
                "G publish p99 with filters / without",
                ratio,
                f"<= {FILTERED_FANOUT_RATIO:g}",
                ratio <= FILTERED_FANOUT_RATIO,
            )
    if "H" in sections:
        peak = sections["H"]["peak_rss_mb"]
        add("H worker peak RSS (MB)", peak, f"<= {PEAK_RSS_MB:g}", peak <= PEAK_RSS_MB)
    backlog = sections.get("I", {}).get("runs", [])
    if len(backlog) == 2:
        # A fetch is constant-cost in the number of jobs scheduled for later.
        empty, waiting = (run["idle_fetch_buffers"] for run in backlog)
        add(
            f"I idle fetch buffers, {backlog[1]['retries_waiting']:,} retries waiting",
            waiting,
            f"<= {empty} + {FETCH_SLACK_BUFFERS}",
            waiting <= empty + FETCH_SLACK_BUFFERS,
        )
    portal = sections.get("L", {})
    if "first_row" in portal:
        slowest = portal["first_row"]["max_ms"]
        goal = PORTAL_FIRST_ROW_MS
        add("L portal first row, slowest load (ms)", slowest, f"< {goal:g}", slowest < goal)
    return found


def _fmt(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return f"{value:,}"


def rows(data: Result) -> list[tuple[str, str, str, str]]:
    """(section, measure, value, target) rows of the table."""
    sections = data["sections"]
    table: list[tuple[str, str, str, str]] = []
    http = _by_processes(sections.get("A"))
    queue = _by_processes(sections.get("B"))
    for processes, value in http.items():
        table.append(
            ("A", f"HTTP ceiling, {processes} process(es), c=50", f"{_fmt(value)} req/s", "")
        )
    for processes, value in queue.items():
        table.append(("B", f"queue ceiling, {processes} worker(s)", f"{_fmt(value)} jobs/s", ""))
    for processes, value in _by_processes(sections.get("B", {}).get("stock")).items():
        table.append(
            (
                "B",
                f"stock Procrastinate (own schema, defaults), {processes} worker(s)",
                f"{_fmt(value)} jobs/s",
                "",
            )
        )
    for run in sections.get("C", {}).get("runs", []):
        workers, value = run["workers"], run["per_second"]
        ratios = []
        if http.get(workers):
            ratios.append(f"C/A {value / http[workers]:.2f}")
        if queue.get(workers):
            ratios.append(f"C/B {value / queue[workers]:.2f}")
        table.append(
            (
                "C",
                f"end-to-end, {run['events']:,} events x fan-out {run['fanout']}, "
                f"{workers} worker(s){_batched(run)}",
                f"{_fmt(value)} deliveries/s ({', '.join(ratios)}; "
                f"publish {_fmt(run['publish_events_per_second'])} events/s)",
                f"C/B >= {QUEUE_SHARE}",
            )
        )
    modes = sections.get("C", {}).get("publish_batch_modes")
    if modes:
        per_second = modes["events_per_second"]
        table.append(
            (
                "C",
                "batch of 100 atomic per event: savepoints in one transaction / a transaction each",
                f"{_fmt(per_second['savepoints'])} / {_fmt(per_second['transaction_per_event'])} "
                f"events/s ({modes['savepoints_speedup']}x)",
                "",
            )
        )
    table += _statement_rows(sections.get("S"))
    if "D" in sections:
        latency = sections["D"]["latency"]
        table.append(
            (
                "D",
                f"publish-to-receive at {sections['D']['rate']:g} events/s",
                f"p50 {_fmt(latency['p50_ms'])} / p95 {_fmt(latency['p95_ms'])} / "
                f"p99 {_fmt(latency['p99_ms'])} ms",
                f"p50 <= {LATENCY_P50_MS:g}, p99 <= {LATENCY_P99_MS:g} ms",
            )
        )
        for part, label in (
            ("publish_call", "of which publishEvent call"),
            ("after_publish", "of which publish answered -> received"),
        ):
            share = sections["D"][part]
            table.append(
                (
                    "D",
                    label,
                    f"p50 {_fmt(share['p50_ms'])} / p99 {_fmt(share['p99_ms'])} ms",
                    "",
                )
            )
    if "E" in sections:
        lateness = sections["E"]["lateness"]
        table.append(
            (
                "E",
                f"retry lateness (interval {sections['E']['interval_seconds']:g} s)",
                f"p50 {_fmt(lateness['p50_ms'])} / p99 {_fmt(lateness['p99_ms'])} ms",
                f"p99 <= {RETRY_P99_MS:g} ms",
            )
        )
        idle = sections["E"].get("idle")
        if idle:
            table.append(
                (
                    "E",
                    f"idle database load ({idle['workers']} workers, {idle['seconds']:g} s)",
                    f"{_fmt(idle['transactions_per_second'])} transactions/s"
                    f" ({_fmt(idle['per_worker'])} a worker)"
                    + (
                        f", {_fmt(idle['statements_per_second'])} statements/s"
                        if "statements_per_second" in idle
                        else ""
                    ),
                    "no more than before",
                )
            )
    if "F" in sections:
        scale = sections["F"]
        names = {
            "deliveries_first_50": "deliveries(first: 50) + attempts",
            "delivery_by_id": "delivery(id) + attempts",
            "deliveries_first_50_failed": "deliveries(first: 50, status FAILED) + attempts",
        }
        rows_made = scale["data"]["tables"].get("deliveries", {}).get("rows", 0)
        for shape, label in names.items():
            latency = scale["latency"][shape]
            goal = f"p99 <= {API_P99_MS:g} ms" if shape != "deliveries_first_50_failed" else ""
            table.append(
                (
                    "F",
                    f"{label}, {rows_made:,} rows",
                    f"p50 {_fmt(latency['p50_ms'])} / p99 {_fmt(latency['p99_ms'])} ms",
                    goal,
                )
            )
        scans = [plan["query"] for plan in scale["explain"] if plan["seq_scan"]]
        table.append(
            (
                "F",
                "EXPLAIN seq scans (custom and generic plans)",
                ", ".join(scans) or "none",
                "none",
            )
        )
    if "G" in sections:
        latency = sections["G"]["latency"]
        table.append(
            (
                "G",
                f"publishEvent, {sections['G']['subscriptions']} subscriptions",
                f"p50 {_fmt(latency['p50_ms'])} / p99 {_fmt(latency['p99_ms'])} ms",
                f"p99 <= {FANOUT_P99_MS:g} ms",
            )
        )
        for name, goal in (
            ("filtered", f"p99 <= {FILTERED_FANOUT_RATIO:g}x"),
            ("all_matching", ""),
        ):
            filtered = sections["G"].get(name)
            if filtered is None:
                continue
            latency = filtered["latency"]
            table.append(
                (
                    "G",
                    f"publishEvent, {filtered['subscriptions']} subscriptions with content "
                    f"filters ({filtered['matching']} match)",
                    f"p50 {_fmt(latency['p50_ms'])} / p99 {_fmt(latency['p99_ms'])} ms "
                    f"(p99 {sections['G'][f'{name}_p99_ratio']:.2f}x without filters)",
                    goal,
                )
            )
        ordered = sections["G"].get("ordered")
        if ordered is not None:
            latency = ordered["latency"]
            table.append(
                (
                    "G",
                    f"publishEvent, {ordered['subscriptions']} subscriptions ordered per subject "
                    "(a new subject each call)",
                    f"p50 {_fmt(latency['p50_ms'])} / p99 {_fmt(latency['p99_ms'])} ms "
                    f"({sections['G']['ordered_p50_ratio']:.2f}x / "
                    f"{sections['G']['ordered_p99_ratio']:.2f}x unordered)",
                    "",
                )
            )
    if "H" in sections:
        memory = sections["H"]
        table.append(
            (
                "H",
                f"worker peak RSS, {memory['max_in_flight_at_receiver']} in flight",
                f"{_fmt(memory['peak_rss_mb'])} MB (idle {_fmt(memory['idle_rss_mb'])} MB)",
                f"<= {PEAK_RSS_MB:g} MB",
            )
        )
    for run in sections.get("I", {}).get("runs", []):
        latency = run["latency"]
        table.append(
            (
                "I",
                f"{run['events']:,}-event burst, then {run['rate']:g} events/s, "
                f"{run['retries_waiting']:,} retries waiting",
                f"{_fmt(run['per_second'])} deliveries/s; p50 {_fmt(latency['p50_ms'])} / "
                f"p99 {_fmt(latency['p99_ms'])} ms; idle fetch {run['idle_fetch_buffers']} buffers",
                "",
            )
        )
    if "J" in sections:
        for measure, label in (
            ("deliveries_first_50", "deliveries(first: 50) + attempts"),
            ("publish_event", "publishEvent, 10 subscriptions"),
        ):
            saved = sections["J"][measure]
            rounds = ", ".join(f"{share:.0%}" for share in saved["saved_share_per_round"])
            table.append(
                (
                    "J",
                    f"API CPU per {label}, WEBHOOKS_FAST_EXECUTION on / off",
                    f"{_fmt(saved['on_cpu_ms'])} / {_fmt(saved['off_cpu_ms'])} ms "
                    f"(saves {saved['saved_share']:.0%}; by round {rounds})",
                    "",
                )
            )
    for run in sections.get("K", {}).get("runs", []):
        publish = run["publish"]
        ordered = run["ordering"] == "PER_SUBJECT"
        table.append(
            (
                "K",
                f"{run['subjects']} subjects x {run['events'] // run['subjects']} events x fan-out "
                f"{run['fanout']}, {run['workers']} workers, "
                + ("ordered per subject" if ordered else "unordered"),
                f"{_fmt(run['per_second'])} deliveries/s; publishEvent p50 "
                f"{_fmt(publish['p50_ms'])} / p99 {_fmt(publish['p99_ms'])} ms"
                + (f"; {run['overtaken']} overtaken" if ordered else ""),
                "",
            )
        )
    if "T" in sections:
        off, on = sections["T"]["off"], sections["T"]["on"]
        for fanout in ("1", "10"):
            a, b = off["throughput"][fanout], on["throughput"][fanout]
            table.append(
                (
                    "T",
                    f"tracing off / on: end-to-end, fan-out {fanout}, 2 workers",
                    f"{_fmt(a['per_second'])} / {_fmt(b['per_second'])} deliveries/s; CPU per "
                    f"delivery: workers {a['worker_cpu_ms']:.2f} / {b['worker_cpu_ms']:.2f} ms, "
                    f"API {a['driver_cpu_ms']:.2f} / {b['driver_cpu_ms']:.2f} ms",
                    "",
                )
            )
        table.append(
            (
                "T",
                "tracing off / on: publish-to-receive, p50 and p99",
                f"{_fmt(off['latency_p50_ms'])} / {_fmt(on['latency_p50_ms'])} ms, "
                f"{_fmt(off['latency_p99_ms'])} / {_fmt(on['latency_p99_ms'])} ms",
                "",
            )
        )
    table += _network_rows(sections.get("N"))
    portal = sections.get("L", {})
    if portal:
        first_row = portal.get("first_row")
        table.append(
            (
                "L",
                f"portal delivery log, link to first row in Chromium, "
                f"{portal.get('deliveries', 0):,} deliveries ({portal.get('loads', 0)} cold loads)",
                f"p50 {_fmt(first_row['p50_ms'])} / max {_fmt(first_row['max_ms'])} ms"
                if first_row
                else f"skipped: {portal.get('skipped')}",
                f"< {PORTAL_FIRST_ROW_MS:g} ms",
            )
        )
    return table


def _network_rows(section: Result | None) -> list[tuple[str, str, str, str]]:
    if not section:
        return []
    if "skipped" in section:
        return [("N", "C across a veth pair", f"skipped: {section['skipped']}", "")]
    found = []
    for setting in section["settings"]:
        delay = f"{setting['delay_ms_each_way']:g} ms each way" + (
            " through bench.delay_relay" if setting["relayed"] else ""
        )
        latency = setting["latency"]["latency"]
        found.append(
            (
                "N",
                f"worker across a veth pair, {delay} (SELECT 1: "
                f"{_fmt(setting['select_1_round_trip_ms'])} ms)",
                f"fan-out 10: {_fmt(setting['fanout_10']['per_second'])} deliveries/s; "
                f"fan-out 1, publishEvents x {setting['fanout_1_batched']['publish_batch']}: "
                f"{_fmt(setting['fanout_1_batched']['per_second'])} deliveries/s; "
                f"p99 {_fmt(latency['p99_ms'])} ms at {setting['latency']['rate']:g} events/s",
                "",
            )
        )
    ratio = section["throughput_ratio"]
    found.append(
        (
            "N",
            "with the delay / without it",
            f"fan-out 10 {ratio['fanout_10']}x, fan-out 1 {ratio['fanout_1_batched']}x; "
            f"p99 latency {section['latency_p99_ratio']}x",
            "",
        )
    )
    return found


def _statement_rows(section: Result | None) -> list[tuple[str, str, str, str]]:
    if not section:
        return []
    if "skipped" in section:
        return [("S", "SQL statements per first-attempt delivery", section["skipped"], "")]
    return [
        (
            "S",
            f"SQL statements per first-attempt delivery (worker, {section['succeeded']:,} "
            "deliveries, pg_stat_statements)",
            f"{_fmt(section['per_delivery'])} (of which BEGIN/COMMIT "
            f"{_fmt(section['transaction_control_per_delivery'])})",
            f"<= {STATEMENTS_PER_DELIVERY}",
        )
    ]


def table(data: Result) -> str:
    """The whole report as Markdown: figures, then targets met or missed."""
    loads = [
        value for section in data["sections"].values() for value in section.get("load_average", [])
    ]
    load = f", load average {min(loads):.1f}-{max(loads):.1f}" if loads else ""
    lines = [
        f"Benchmark ({data['mode']}, {data['machine']['cpus']} CPUs, PostgreSQL "
        f"{data['machine']['postgresql']}, {data['duration_seconds']} s{load},"
        f" {data['payload_bytes']:,}-byte payloads)",
        "",
        "| | Measure | Result | Target |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(data)]
    lines += ["", "| Target | Value | Goal | Met |", "|---|---|---|---|"]
    lines += [
        f"| {t['target']} | {_fmt(t['value'])} | {t['goal']} | {'met' if t['met'] else 'MISSED'} |"
        for t in data["targets"]
    ]
    return "\n".join(lines)


def write(data: Result, output_dir: Path) -> Path:
    """``<output_dir>/<timestamp>.json`` and ``latest.json``; returns the first."""
    output_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = output_dir / f"{stamp}.json"
    path.write_text(text, encoding="utf-8")
    (output_dir / "latest.json").write_text(text, encoding="utf-8")
    return path
