"""Offline checks of the monitoring package: rules, routing, runbook, dashboards and deploy files."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from conftest import tool

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "synthdrift.rules.yml"
ALERTS = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"] if "alert" in rule]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))


def run(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rules_are_valid_and_their_unit_tests_pass() -> None:
    assert "SUCCESS: 17 rules found" in run(tool("promtool"), "check", "rules", str(RULES))
    unit_tests = DEPLOY / "prometheus" / "tests" / "synthdrift.test.yml"
    assert "SUCCESS" in run(tool("promtool"), "test", "rules", str(unit_tests))


def test_every_alert_has_a_unit_test() -> None:
    tested = set(re.findall(r"alertname: (\w+)", (DEPLOY / "prometheus" / "tests" / "synthdrift.test.yml").read_text()))
    assert tested == {rule["alert"] for rule in ALERTS}


@pytest.mark.parametrize("rule", ALERTS, ids=[rule["alert"] for rule in ALERTS])
def test_every_alert_is_complete_and_has_a_runbook_section(rule: dict[str, Any]) -> None:
    assert rule["for"] and rule["labels"]["severity"] in ("critical", "warning")
    assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
    anchor = rule["annotations"]["runbook_url"].split("#")[1]
    assert anchor == rule["alert"].lower()
    assert f"\n## {rule['alert']}\n" in (DEPLOY / "RUNBOOK.md").read_text()


def test_rules_are_what_the_code_writes() -> None:
    rendered = load(DEPLOY / "prometheus" / "rules.py").render()
    assert RULES.read_text() == rendered, f"{RULES.name} is stale: run python deploy/prometheus/rules.py"


def test_the_runbook_base_moves_every_runbook_url_and_nothing_else() -> None:
    render = load(DEPLOY / "prometheus" / "rules.py").render
    base = "https://runbooks.example.org/synthdrift.md"
    shipped, moved = yaml.safe_load(render()), yaml.safe_load(render(base))
    for rules, expected in ((shipped, load(DEPLOY / "mixin.py").RUNBOOK_BASE), (moved, base)):
        alerts = [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
        assert len(alerts) == len(ALERTS)
        for alert in alerts:
            assert alert["annotations"].pop("runbook_url") == f"{expected}#{alert['alert'].lower()}"
    assert moved == shipped  # with the links taken out


def test_alertmanager_config_is_valid_and_keeps_secrets_out() -> None:
    path = DEPLOY / "alertmanager" / "alertmanager.yml"
    run(tool("amtool"), "check-config", str(path))
    config = yaml.safe_load(path.read_text())
    routes = {tuple(r["matchers"]): r["receiver"] for r in config["route"]["routes"]}
    assert routes == {('severity="critical"',): "pager", ('severity="warning"',): "chat"}
    assert "model" in config["route"]["group_by"]
    assert config["inhibit_rules"][0]["equal"] == ["model", "feature", "segment"]
    receivers = json.dumps(config["receivers"])
    assert "_file" in receivers and "http" not in receivers  # secrets come from mounted files


def test_dashboards_are_what_the_code_writes() -> None:
    rendered = load(ROOT / "grafana" / "dashboards.py").render()
    assert sorted(rendered) == [p.name for p in DASHBOARDS]
    for path in DASHBOARDS:
        assert path.read_text() == rendered[path.name], f"{path.name} is stale: run python grafana/dashboards.py"


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_structure(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["uid"].startswith("synthdrift-") and "synthdrift" in board["tags"]
    variables = {v["name"] for v in board["templating"]["list"]}
    assert "datasource" in variables
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        area = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & area, f"{panel['title']} overlaps another panel"
        cells |= area
        assert panel["targets"] and all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
        used = set(re.findall(r"\$(\w+)", " ".join(t["expr"] for t in panel["targets"]))) - {"__rate_interval"}
        assert used <= variables, f"{panel['title']} uses undefined variables {used - variables}"


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    exprs = [t["expr"] for path in DASHBOARDS for panel in json.loads(path.read_text())["panels"]
             for t in panel["targets"]]
    substituted = [e.replace("$__rate_interval", "1m").replace("$model", "m").replace("$feature", "f")
                   .replace("$segment", "all") for e in exprs]
    rules = {"groups": [{"name": "panels", "rules": [{"record": f"panel:{i}", "expr": e}
                                                      for i, e in enumerate(substituted)]}]}
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump(rules))
    assert f"SUCCESS: {len(exprs)} rules found" in run(tool("promtool"), "check", "rules", str(path))


def test_kubernetes_manifests_are_generated_from_their_sources() -> None:
    generate = load(DEPLOY / "kubernetes" / "generate.py")
    for name, render in generate.GENERATED.items():
        assert (DEPLOY / "kubernetes" / name).read_text() == render(), f"{name} is stale: run its generator"
    rule = yaml.safe_load((DEPLOY / "kubernetes" / "prometheusrule.yaml").read_text())
    assert rule["spec"] == yaml.safe_load(RULES.read_text())


def test_kubernetes_worker_has_probes_limits_and_monitoring() -> None:
    documents = {}
    for path in (DEPLOY / "kubernetes").glob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            documents[document["kind"]] = document
    assert set(documents) == {"Deployment", "Service", "ServiceMonitor", "PrometheusRule", "ConfigMap"}
    container = documents["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]
    selector = documents["Deployment"]["spec"]["selector"]["matchLabels"]
    assert documents["Service"]["spec"]["selector"] == selector
    assert documents["ServiceMonitor"]["spec"]["selector"]["matchLabels"] == documents["Service"]["metadata"]["labels"]
    config = yaml.safe_load(documents["ConfigMap"]["data"]["monitor.yaml"])
    assert config["metrics"]["port"] == container["ports"][0]["containerPort"]


def test_hand_written_scrape_configs_name_the_job_the_rules_select() -> None:
    job = load(DEPLOY / "mixin.py").JOB
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert [scrape["job_name"] for scrape in prometheus["scrape_configs"]] == [job]
    # The Prometheus Operator names the job after the Service's label that the ServiceMonitor's jobLabel names.
    monitor = yaml.safe_load((DEPLOY / "kubernetes" / "servicemonitor.yaml").read_text())
    service = yaml.safe_load((DEPLOY / "kubernetes" / "service.yaml").read_text())
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == job


def test_compose_runs_kafka_kraft_two_workers_and_the_monitoring_stack() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"kafka", "worker-1", "worker-2", "prometheus", "alertmanager", "grafana"} <= set(services)
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["worker-1:8000", "worker-2:8000"] and prometheus["scrape_configs"][0]["job_name"] == "synthdrift"
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.endswith(("profile.json", "secrets")):
                assert (DEPLOY / source).resolve().exists(), f"compose mounts a missing {source}"
    run(tool("promtool"), "check", "config", "--syntax-only", str(DEPLOY / "prometheus" / "prometheus.yml"))
