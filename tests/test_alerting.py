"""End to end: a real Prometheus scrapes a real worker, loads the shipped rules, and pages a webhook
through a real Alertmanager running the shipped routing tree; every Grafana panel's query returns
data from that Prometheus.

The rules are the shipped ones with every `for:` cut to 2 seconds, and the receivers point at a
webhook this test runs: everything else (expressions, labels, routes, inhibitions) is as shipped.
"""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest
import yaml
from conftest import tool
from streaming import Stack, wait_for

from monitor.commands.broker import free_port
from monitor.commands.replay import Drift, simulate
from monitor.core.profile import Profile, baseline

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "synthdrift.rules.yml"
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
MODEL = "support-router"


class Webhook(http.server.ThreadingHTTPServer):
    """Collects what Alertmanager posts, by path (/pager, /chat)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, float, dict[str, Any]]] = []
        webhook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                webhook.received.append((self.path, time.monotonic(), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def alerts(self, path: str) -> list[tuple[float, dict[str, Any]]]:
        return [(when, alert) for p, when, body in self.received if p == path for alert in body["alerts"]]


def shipped_rules_with_short_for(directory: Path) -> Path:
    text = re.sub(r"^(\s+for:) \S+$", r"\1 2s", RULES.read_text(), flags=re.MULTILINE)
    path = directory / "rules.yml"
    path.write_text(text)
    return path


def shipped_routes_to(webhook: Webhook, directory: Path) -> Path:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    config["route"].update(group_wait="1s", group_interval="1s")
    config["receivers"] = [{"name": name, "webhook_configs": [{"url": f"{webhook.url}/{name}", "send_resolved": True}]}
                           for name in ("pager", "chat")]
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


class Monitoring:
    def __init__(self, directory: Path, worker_port: int, webhook: Webhook) -> None:
        self.am_port, self.prom_port = free_port(), free_port()
        prometheus_config = directory / "prometheus.yml"
        prometheus_config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(shipped_rules_with_short_for(directory))],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.am_port}"]}]}]},
            "scrape_configs": [{"job_name": "synthdrift",
                                "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]}],
        }))
        self.processes = [
            subprocess.Popen([tool("prometheus-alertmanager"), f"--config.file={shipped_routes_to(webhook, directory)}",
                              f"--storage.path={directory / 'am'}", f"--web.listen-address=127.0.0.1:{self.am_port}",
                              "--cluster.listen-address="], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            subprocess.Popen([tool("prometheus"), f"--config.file={prometheus_config}",
                              f"--storage.tsdb.path={directory / 'tsdb'}",
                              f"--web.listen-address=127.0.0.1:{self.prom_port}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        ]
        wait_for(lambda: self.query("up") is not None, 30, "Prometheus ready")

    def query(self, expr: str) -> list[dict[str, Any]] | None:
        url = f"http://127.0.0.1:{self.prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = json.loads(response.read())
        except OSError:
            return None
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)


def organic_rows(events: Iterator[dict[str, Any]]) -> bytes:
    """Events as rows of a table in the training table's columns (JSON lines), marked organic."""
    return b"".join(orjson.dumps({**e["features"], **e["segments"], "predicted": e["prediction"]["label"],
                                  "confidence": e["prediction"]["score"], "true_label": e["label"],
                                  "source": "organic"}) + b"\n" for e in events)


@pytest.fixture(scope="module")
def scenario(bootstrap: str, profile_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Day one on a synthetic profile with a standing gap: real traffic's `amount` sits 2 synthetic
    sds above the synthetic data from the start, and an organic baseline was taken of it. Stable
    real traffic (the standing gap alone), then a change (`amount` moves 2 sds more, a new
    language); what the webhook got in each phase and when."""
    directory = tmp_path_factory.mktemp("alerting")
    profile = Profile.load(profile_path)
    standing = [Drift("amount", "shift", 2.0)]
    organic = directory / "organic.jsonl"
    organic.write_bytes(organic_rows(simulate(profile, 6000, standing, 0, seed=9)))
    (directory / "baseline.json").write_bytes(baseline(profile, organic).to_json())
    stack = Stack(bootstrap, profile_path, directory, baseline=directory / "baseline.json")
    webhook = Webhook()
    monitoring = None
    try:
        port = stack.start_worker()
        monitoring = Monitoring(directory, port, webhook)
        wait_for(lambda: monitoring.query('up{job="synthdrift"} == 1'), 30, "the worker scraped")

        def traffic(drifts: list[Drift], seed: int) -> list[bytes]:
            return [orjson.dumps(e) for e in simulate(profile, 6000, drifts, 0, seed, start_time=time.time())]

        stack.produce(traffic(standing, seed=1) + [b"{not json"])
        wait_for(lambda: sum(w["events"] for w in stack.windows().values()) >= 6000, 60, "stable windows judged")
        time.sleep(8)  # scrapes, rule evaluations and Alertmanager's group wait, with nothing to say
        stable = list(webhook.received)
        standing_gap = monitoring.query('synthdrift_reality_gap_psi{feature="amount", segment="all"} > 0.25')
        drift_started = time.monotonic()
        stack.produce(traffic([Drift("amount", "shift", 4.0), Drift("language", "new", 0.2, "es")], seed=2))
        wait_for(lambda: webhook.alerts("/pager"), 90, "a page")
        yield {"stable": stable, "standing_gap": standing_gap, "webhook": webhook, "drift_started": drift_started,
               "monitoring": monitoring}
    finally:
        if monitoring:
            monitoring.stop()
        stack.stop()
        webhook.shutdown()


def test_the_standing_gap_alone_pages_nobody(scenario: dict[str, Any]) -> None:
    assert scenario["standing_gap"]  # against the synthetic data, amount is far off...
    assert scenario["stable"] == []  # ... and that is no news against the organic baseline


def test_drift_pages_with_the_right_labels(scenario: dict[str, Any]) -> None:
    pages = scenario["webhook"].alerts("/pager")
    when, first = pages[0]
    labels = first["labels"]
    assert first["status"] == "firing"
    assert labels["alertname"] == "SynthdriftFeatureDriftCritical" and labels["severity"] == "critical"
    assert labels["model"] == MODEL and labels["segment"] == "all" and labels["reference"] == "organic"
    assert {labels["feature"] for _, alert in pages for labels in [alert["labels"]]} >= {"amount"}
    assert first["annotations"]["runbook_url"].endswith("#synthdriftfeaturedriftcritical")
    print(f"\nfirst drifted event to page: {when - scenario['drift_started']:.1f} s")


def test_warnings_go_to_chat_not_to_the_pager(scenario: dict[str, Any]) -> None:
    webhook = scenario["webhook"]
    wait_for(lambda: webhook.alerts("/chat"), 30, "a warning in chat")
    assert all(alert["labels"]["severity"] == "warning" for _, alert in webhook.alerts("/chat"))
    assert all(alert["labels"]["severity"] == "critical" for _, alert in webhook.alerts("/pager"))
    names = {alert["labels"]["alertname"] for _, alert in webhook.alerts("/chat")}
    assert "SynthdriftCoverageGap" in names
    # The gap against the synthetic data grew too: its ticket fires, and the page on the same
    # feature inhibits it (one notification for one change).
    wait_for(lambda: scenario["monitoring"].query('ALERTS{alertname="SynthdriftRealityGapGrew", '
                                                  'alertstate="firing", feature="amount"}'), 30, "the gap's growth")
    assert "SynthdriftRealityGapGrew" not in names


def panel_queries() -> list[tuple[str, str, str]]:
    queries = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            queries += [(path.stem, panel["title"], t["expr"]) for t in panel["targets"]]
        queries += [(path.stem, a["name"], a["expr"]) for a in board["annotations"]["list"]]
    return queries


def concrete(expr: str) -> str:
    """A panel's query as Grafana would send it for the drift scenario."""
    values = {"$__rate_interval": "30s", "$__interval": "5s", "$model": MODEL, "$feature": "amount",
              "$segment": "all"}
    for name, value in values.items():
        expr = expr.replace(name, value)
    return expr


@pytest.mark.parametrize("board, title, expr", panel_queries())
def test_every_panel_query_returns_data(scenario: dict[str, Any], board: str, title: str, expr: str) -> None:
    monitoring = scenario["monitoring"]
    if board == "feature" and title == "Detections":
        expr = expr.replace("[1m]", "[10m]")  # detections happened once, early in the scenario
    result = wait_for(lambda: monitoring.query(concrete(expr)), 20, f"data for {board} / {title}")
    assert result
