"""The synthdrift Grafana dashboards, as code: `python grafana/dashboards.py` writes grafana/dashboards/.

Overview, Feature, Segment and Pipeline, with `model`, `feature` and `segment` variables. The JSON
files are committed; a test checks that they are what this script writes, that their structure is
sound, and that every query is valid PromQL returning data from a real Prometheus.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))  # deploy/mixin.py, as script or loaded by path
import mixin

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
WIDTH = 24


def target(expr: str, legend: str = "", instant: bool = False) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": "A", "instant": instant,
            "range": not instant}


def panel(kind: str, title: str, targets: list[dict[str, Any]], width: int = 12, height: int = 8,
          description: str = "", **options: Any) -> dict[str, Any]:
    for ref, item in zip("ABCDEFGH", targets, strict=False):
        item["refId"] = ref
    return {"type": kind, "title": title, "description": description, "datasource": DATASOURCE,
            "targets": targets, "gridPos": {"w": width, "h": height}, **options}


def variable(name: str, query: str, label: str) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE,
            "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "definition": query, "refresh": 2, "sort": 1, "includeAll": False, "multi": False}


DATASOURCE_VARIABLE = {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus"}
MODEL = variable("model", "label_values(synthdrift_feature_drift_severity, model)", "Model")
FEATURE = variable("feature", 'label_values(synthdrift_feature_drift_severity{model="$model"}, feature)', "Feature")
SEGMENT = variable("segment", 'label_values(synthdrift_feature_drift_severity{model="$model"}, segment)', "Segment")
SEVERITY_COLOURS = {"mappings": [{"type": "value", "options": {
    "0": {"text": "ok", "color": "green"}, "1": {"text": "warning", "color": "orange"},
    "2": {"text": "critical", "color": "red"}}}]}


def layout(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Places panels left to right, top to bottom, with ids."""
    x = y = row_height = 0
    for number, item in enumerate(panels, 1):
        grid = item["gridPos"]
        if x + grid["w"] > WIDTH:
            x, y, row_height = 0, y + row_height, 0
        grid.update(x=x, y=y)
        x += grid["w"]
        row_height = max(row_height, grid["h"])
        item["id"] = number
    return panels


def dashboard(uid: str, title: str, variables: list[dict[str, Any]], panels: list[dict[str, Any]],
              annotations: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return {
        "uid": uid, "title": f"synthdrift / {title}", "tags": ["synthdrift"], "timezone": "browser",
        "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [DATASOURCE_VARIABLE, *variables]},
        "annotations": {"list": list(annotations)},
        "links": [{"title": "synthdrift", "type": "dashboards", "tags": ["synthdrift"], "asDropdown": True}],
        "panels": layout(panels),
    }


def overview() -> dict[str, Any]:
    return dashboard("synthdrift-overview", "Overview", [MODEL], [
        panel("stat", "Workers up", [target(f"sum(up{{{mixin.JOB_SELECTOR}}})")], width=6, height=4),
        panel("stat", "Events per second", [target('sum(rate(synthdrift_events_total{status="valid"}[$__rate_interval]))')],
              width=6, height=4, fieldConfig={"defaults": {"unit": "ops"}}),
        panel("stat", "Worst severity", [target('max(synthdrift_feature_drift_severity{model="$model"})')],
              width=6, height=4, fieldConfig={"defaults": SEVERITY_COLOURS}),
        panel("stat", "Firing alerts", [target('count(ALERTS{alertstate="firing", alertname=~"Synthdrift.*"}) or vector(0)')],
              width=6, height=4),
        panel("table", "Worst features and segments",
              [target('topk(15, max by (feature, segment) (synthdrift_feature_drift_severity{model="$model"}))',
                      instant=True)], fieldConfig={"defaults": SEVERITY_COLOURS}),
        panel("bargauge", "Coverage gaps: values the synthetic data never had",
              [target('max by (field, value) (synthdrift_coverage_gap_share{model="$model"})', "{{field}}={{value}}",
                      instant=True)], fieldConfig={"defaults": {"unit": "percentunit"}}),
        panel("timeseries", "PSI by feature, all traffic",
              [target('synthdrift_feature_drift_score{model="$model", segment="all", statistic="psi"}',
                      "{{feature}} against {{reference}}")], width=24),
        panel("timeseries", "Reality gap: PSI against the synthetic data, live and standing (with an organic baseline)",
              [target('synthdrift_reality_gap_psi{model="$model", segment="all"}', "{{feature}} live"),
               target('synthdrift_reality_gap_standing_psi{model="$model", segment="all"}', "{{feature}} standing")],
              width=24),
        panel("timeseries", "Accuracy by provenance, 95% interval, beside the synthetic evaluation",
              [target('synthdrift_accuracy_ratio{model="$model", segment="all"}', "{{provenance}} {{statistic}}")],
              description="Organic accuracy against the synthetic evaluation is the reality gap of performance; "
                          "an interval above it is no gap, however low the estimate.",
              fieldConfig={"defaults": {"unit": "percentunit"}}),
        panel("timeseries", "Eval-flattery index: synthetic evaluation minus organic accuracy, by segment",
              [target('synthdrift_eval_flattery{model="$model", statistic="index"}', "{{segment}}")],
              description="Above 0 with its interval (Segment dashboard): the synthetic evaluation flatters the "
                          "model; `synthdrift contamination` says how much of it the training data explains.",
              fieldConfig={"defaults": {"unit": "percentunit"}}),
        panel("table", "Slices where live traffic departs from the synthetic data (last window)",
              [target('max by (slice, source) (synthdrift_slice_share{model="$model"})', "{{slice}} {{source}}",
                      instant=True)],
              description="Conditions (and pairs of them beyond what each explains) whose share of live events "
                          "departs from the synthetic data by 2 points or more, beyond a Bonferroni-bounded z.",
              fieldConfig={"defaults": {"unit": "percentunit"}}),
        panel("table", "Weak slices: accuracy below the synthetic evaluation (last window)",
              [target('max by (slice, source) (synthdrift_slice_accuracy{model="$model"})', "{{slice}} {{source}}",
                      instant=True)],
              description="Live accuracy in each top slice beside the synthetic evaluation's in that slice; weak=1 "
                          "where it falls by 5 points or more beyond the Bonferroni bound, and beyond what the rest "
                          "of traffic (for a pair: the rest of each condition) explains.",
              fieldConfig={"defaults": {"unit": "percentunit"}}),
        panel("timeseries", "Events by provenance (only organic events judge drift)",
              [target('synthdrift_provenance_events{model="$model"}', "{{provenance}}")]),
    ])


def feature() -> dict[str, Any]:
    selector = 'model="$model", feature="$feature", segment="$segment"'
    return dashboard("synthdrift-feature", "Feature", [MODEL, FEATURE, SEGMENT], [
        panel("barchart", "Synthetic and live distribution per bin",
              [target(f'synthdrift_feature_bin_share{{{selector}}}', "{{source}} {{bin}}", instant=True)],
              width=24, description="The synthetic profile's share of values per bin next to the last window's.",
              fieldConfig={"defaults": {"unit": "percentunit"}}),
        panel("timeseries", "Drift statistics", [target(f'synthdrift_feature_drift_score{{{selector}}}', "{{statistic}}")]),
        panel("timeseries", "PSI and its thresholds", [
            target(f'synthdrift_feature_drift_score{{{selector}, statistic="psi"}}', "psi"),
            target(f'synthdrift_feature_drift_threshold{{{selector}, statistic="psi"}}', "{{severity}}")]),
        panel("state-timeline", "Severity", [target(f'synthdrift_feature_drift_severity{{{selector}}}', "severity")],
              width=24, height=5, fieldConfig={"defaults": SEVERITY_COLOURS}),
    ], annotations=({"name": "Detections", "datasource": DATASOURCE, "enable": True, "iconColor": "red",
                     "expr": 'changes(synthdrift_drift_detections_total{model="$model", feature="$feature"}[1m]) > 0',
                     "titleFormat": "{{detector}} fired on {{feature}}"},))


def segment() -> dict[str, Any]:
    selector = 'model="$model", segment="$segment"'
    return dashboard("synthdrift-segment", "Segment", [MODEL, SEGMENT, FEATURE], [
        panel("table", "Severity of every feature in the segment",
              [target(f'synthdrift_feature_drift_severity{{{selector}}}', "{{feature}}", instant=True)],
              fieldConfig={"defaults": SEVERITY_COLOURS}),
        panel("bargauge", "Coverage gaps",
              [target('max by (field, value) (synthdrift_coverage_gap_share{model="$model"})', "{{field}}={{value}}",
                      instant=True)], fieldConfig={"defaults": {"unit": "percentunit"}}),
        panel("timeseries", "PSI by feature in the segment",
              [target(f'synthdrift_feature_drift_score{{{selector}, statistic="psi"}}', "{{feature}}")]),
        panel("timeseries", "Accuracy on organic data, by segment (the reality gap)",
              [target('synthdrift_accuracy_ratio{model="$model", provenance="organic", statistic="accuracy"}',
                      "{{segment}}")], fieldConfig={"defaults": {"unit": "percentunit"}}),
        panel("timeseries", "Organic accuracy in the segment with its 95% interval, and the synthetic evaluation's",
              [target(f'synthdrift_accuracy_ratio{{{selector}, provenance="organic"}}', "{{statistic}}")],
              fieldConfig={"defaults": {"unit": "percentunit"}}),
        panel("timeseries", "Eval-flattery index in the segment, with its 95% interval",
              [target(f'synthdrift_eval_flattery{{{selector}}}', "{{statistic}}")],
              fieldConfig={"defaults": {"unit": "percentunit"}}),
        panel("barchart", "Synthetic and live distribution per bin, this segment",
              [target(f'synthdrift_feature_bin_share{{{selector}, feature="$feature"}}', "{{source}} {{bin}}",
                      instant=True)], width=24),
    ])


def pipeline() -> dict[str, Any]:
    return dashboard("synthdrift-pipeline", "Pipeline", [], [
        panel("timeseries", "Events per second", [
            target("sum by (stream, status) (rate(synthdrift_events_total[$__rate_interval]))", "{{stream}} {{status}}")],
              fieldConfig={"defaults": {"unit": "ops"}}),
        panel("timeseries", "Dead letters per second", [
            target("sum by (stream, reason) (rate(synthdrift_dead_letters_total[$__rate_interval]))",
                   "{{stream}} {{reason}}")], fieldConfig={"defaults": {"unit": "ops"}}),
        panel("timeseries", "Consumer lag", [target("sum by (stream) (synthdrift_consumer_lag_messages)", "{{stream}}")]),
        panel("timeseries", "Batch processing, p95", [target(
            "histogram_quantile(0.95, sum by (le, stream) (rate(synthdrift_batch_processing_seconds_bucket[$__rate_interval])))",
            "{{stream}}")], fieldConfig={"defaults": {"unit": "s"}}),
        panel("timeseries", "Window verdict delay, p95", [target(
            "histogram_quantile(0.95, sum by (le, model) (rate(synthdrift_window_close_delay_seconds_bucket[$__rate_interval])))",
            "{{model}}")], fieldConfig={"defaults": {"unit": "s"}}),
        panel("timeseries", "Joins", [target("sum by (kind, outcome) (rate(synthdrift_joins_total[$__rate_interval]))",
                                             "{{kind}} {{outcome}}")]),
        panel("timeseries", "Windows judged", [target("sum by (model) (increase(synthdrift_windows_total[$__rate_interval]))",
                                                      "{{model}}")]),
        panel("timeseries", "Alert events sent", [target("sum by (model, state) (increase(synthdrift_alerts_total[$__rate_interval]))",
                                                         "{{model}} {{state}}")]),
    ])


DASHBOARDS = {"overview": overview, "feature": feature, "segment": segment, "pipeline": pipeline}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {f"{name}.json": json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


if __name__ == "__main__":
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
