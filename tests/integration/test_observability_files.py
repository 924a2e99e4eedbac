"""The operator's files: the Grafana dashboard (ops/grafana/webhooks.json) and the
Prometheus alerts (ops/prometheus/alerts.yml).

Every metric their expressions name is exported by the running service's /metrics (after
a delivery and a failure email, so the labelled series exist); the dashboard is what
Grafana's import takes (the data source a variable, unique panel ids, an expression in
every target); and the rules pass ``promtool check rules`` and their unit tests
(ops/prometheus/alerts_test.yml: each alert fires on its trouble, quiet when healthy).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.delivery import (
    OpenService,
    open_service_fixture,  # noqa: F401 -- the open_service fixture
)
from tests.receivers import Receiver, respond
from tests.smtp import SmtpTestServer

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "grafana" / "webhooks.json"
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "ops" / "prometheus" / "alerts_test.yml"
README = ROOT / "README.md"

# Grafana's own variables, replaced as Grafana does before the query is sent.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
# What the issue asks each file to show (metric names; quantiles of the latency).
DASHBOARD_MUST_SHOW = {
    "webhooks_deliveries_total",
    "webhooks_attempt_duration_seconds_bucket",
    "webhooks_queue_depth",
    "webhooks_oldest_due_job_age_seconds",
    "webhooks_retries_pending",
    "webhooks_failure_emails_pending",
    "webhooks_worker_heartbeat_age_seconds",
    "webhooks_workers_up",
}
ALERTS_MUST_HAVE = {
    "WebhooksQueueBehind": "webhooks_oldest_due_job_age_seconds",
    "WebhooksFailureRateHigh": "webhooks_attempts_total",
    "WebhooksNoWorkerHeartbeat": "webhooks_workers_up",
    "WebhooksFailureEmailsPilingUp": "webhooks_failure_email_oldest_pending_age_seconds",
}


def metric_names(expr: str) -> set[str]:
    """Every metric a PromQL expression selects, from its syntax tree."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    names: set[str] = set()

    def walk(node: Any) -> None:
        match node:
            case promql_parser.VectorSelector():
                assert node.name, f"a selector without a metric name in {expr!r}"
                names.add(node.name)
            case promql_parser.MatrixSelector():
                walk(node.vector_selector)
            case promql_parser.AggregateExpr():
                walk(node.expr)
                if node.param is not None:
                    walk(node.param)
            case promql_parser.BinaryExpr():
                walk(node.lhs)
                walk(node.rhs)
            case promql_parser.Call():
                for argument in node.args:
                    walk(argument)
            case promql_parser.ParenExpr() | promql_parser.UnaryExpr():
                walk(node.expr)
            case promql_parser.SubqueryExpr():
                walk(node.expr)
            case promql_parser.NumberLiteral() | promql_parser.StringLiteral():
                pass
            case _:
                raise AssertionError(f"unexpected PromQL node {type(node).__name__}")

    walk(promql_parser.parse(expr))
    return names


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in panels(dashboard()) for t in p.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def readme_anchors() -> set[str]:
    """The anchors GitHub makes of the README's headings."""
    anchors = set()
    for line in README.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"#+ (.+)", line):
            text = match.group(1).strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def data_sources(node: Any) -> Iterator[Any]:
    """Every "datasource" value anywhere in the dashboard."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from data_sources(value)
    elif isinstance(node, list):
        for value in node:
            yield from data_sources(value)


def test_the_dashboard_is_what_grafanas_import_takes() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 36
    assert board["title"] and board["uid"]
    # The data source is chosen on import (or in the dashboard), never a fixed uid.
    [variable] = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert (variable["name"], variable["query"]) == ("datasource", "prometheus")
    assert "__inputs" not in board
    for source in data_sources(board):
        assert source == {"type": "prometheus", "uid": "${datasource}"}, source
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(board):
        assert isinstance(panel["id"], int) and panel["title"] and panel["type"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], f"{panel['title']} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            metric_names(target["expr"])  # parses


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    named = set().union(*(metric_names(expr) for expr in dashboard_exprs()))
    assert named >= DASHBOARD_MUST_SHOW, DASHBOARD_MUST_SHOW - named
    quantiles = {
        float(m.group(1))
        for expr in dashboard_exprs()
        for m in re.finditer(r"histogram_quantile\(\s*([0-9.]+)", expr)
    }
    assert quantiles >= {0.5, 0.95, 0.99}


def test_each_alert_has_a_wait_a_severity_and_a_runbook_in_the_readme() -> None:
    rules = alert_rules()
    by_name = {rule["alert"]: rule for rule in rules}
    assert len(by_name) == len(rules)
    for name, metric in ALERTS_MUST_HAVE.items():
        assert metric in metric_names(by_name[name]["expr"]), name
    anchors = readme_anchors()
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["alert"]
        page, _, anchor = notes["runbook_url"].partition("#")
        assert page == "README.md" and anchor == rule["alert"].lower(), rule["alert"]
        assert anchor in anchors, f"README has no heading for {rule['alert']}"


def test_the_rules_unit_tests_make_each_alert_fire_and_stay_quiet() -> None:
    tests = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))["tests"]
    checks = [check for test in tests for check in test["alert_rule_test"]]
    for rule in alert_rules():
        mine = [check for check in checks if check["alertname"] == rule["alert"]]
        assert any(check["exp_alerts"] for check in mine), f"{rule['alert']} never fires"
        assert any(not check["exp_alerts"] for check in mine), f"{rule['alert']} never quiet"


def test_promtool_checks_the_rules_and_runs_their_unit_tests() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        # .ci/run installs it (Debian's prometheus package), as it does chromium.
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    checked = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", ALERT_TESTS.name],
        cwd=ALERT_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_readmes_prometheus_configuration_is_valid(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    readme = README.read_text(encoding="utf-8")
    [block] = re.findall(r"```yaml\n# prometheus.yml\n(.*?)```", readme, re.DOTALL)
    [rule_file] = yaml.safe_load(block)["rule_files"]
    config = tmp_path / "prometheus.yml"
    config.write_text(block.replace(rule_file, str(ALERTS)), encoding="utf-8")
    checked = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


async def test_every_metric_they_name_is_exported_by_the_running_service(
    open_service: OpenService, smtp: SmtpTestServer
) -> None:
    # Given the service with its worker: one receiver answers, one fails (one attempt)
    service = await open_service(smtp_url=smtp.url, max_attempts=1)
    with Receiver(default=respond(200)) as ok, Receiver(default=respond(500)) as failing:
        await service.subscribe(ok.url_for("/hook"))
        await service.subscribe(failing.url_for("/hook"))

        # When an event is delivered to one, fails for good at the other, and the
        # failure email is sent
        event = await service.publish_event()
        statuses = set()
        for delivery in event["deliveries"]:
            await service.wait_for_idle(delivery["id"])
            statuses.add((await service.delivery(delivery["id"]))["status"])
        assert statuses == {"SUCCEEDED", "FAILED"}
        await smtp.wait_for_async(1)
        response = await service.api.http.get("/metrics")

    # Then /metrics has a series of every metric the dashboard and the alerts name
    assert response.status_code == 200
    exported = {
        sample.name
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    named = set().union(
        *(metric_names(expr) for expr in dashboard_exprs()),
        *(metric_names(rule["expr"]) for rule in alert_rules()),
    )
    assert named - exported == set()
    # and promtool finds nothing against Prometheus's naming conventions in it
    if promtool := shutil.which("promtool"):
        linted = subprocess.run(
            [promtool, "check", "metrics"],
            input=response.text,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert linted.returncode == 0, linted.stdout + linted.stderr
