"""The HTML report: one self-contained file (Plotly's JavaScript inlined, no request leaves the
page) with the synthetic and live distributions side by side, worst first.

`synthdrift report` renders it from a profile and a file of live events (through `check`); the
worker serves it for its last window at `/report`. A Content-Security-Policy forbids every fetch,
so a page that tried one would say so in the browser's console.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from monitor.core.channels import CategoryBins, Channel, NumericBins, VocabularyBins
from monitor.core.profile import Profile
from monitor.core.severity import Severity
from monitor.core.sketch import Sketch
from monitor.core.statistics import distribution, judged_name
from monitor.core.types import DriftSettings, FeatureResult

COLOURS = {"ok": "#2e7d32", "warning": "#ef6c00", "critical": "#c62828"}
SYNTHETIC, LIVE, NOVEL = "#7986cb", "#ef6c00", "#c62828"
MAX_SEGMENT_CHARTS = 20  # flagged segments beyond these are listed in the summary only
CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 16px;color:#222}
h1{font-size:22px;margin:18px 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 4px} table{border-collapse:collapse;margin:6px 0}
td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
.sev{font-weight:600;border-radius:3px;padding:1px 6px;color:#fff}
.feature{display:flex;gap:16px;flex-wrap:wrap;page-break-inside:avoid}
.chart{flex:1 1 640px;min-height:300px} .stats{flex:0 1 340px;font-size:13px} .muted{color:#777}
@media print{.chart{flex-basis:100%}}
"""


@dataclass
class ReportData:
    """What a report shows: the profile, the live sketch its distributions come from, its judged
    results (worst first), and per window the flagged results, with the detections."""

    profile: Profile
    settings: DriftSettings
    sketch: Sketch
    results: list[FeatureResult]
    windows: list[dict[str, Any]]  # each: "label", "results" (flagged, as JSON)
    detections: list[dict[str, Any]] = field(default_factory=list)
    coverage_gaps: list[dict[str, Any]] = field(default_factory=list)
    accuracy: list[dict[str, Any]] = field(default_factory=list)  # by provenance, as `SourceResult` JSON
    slices: list[dict[str, Any]] = field(default_factory=list)  # departing slices, as `Slice` JSON
    title: str = "synthdrift report"
    source: str = ""


def render(data: ReportData) -> str:
    """The report as one HTML page."""
    from plotly.offline import get_plotlyjs  # the library's own bundle: the page needs no network

    figures: list[tuple[str, dict[str, Any]]] = []
    body = [_summary(data), _heatmap(data, figures), _detections(data, figures), _features(data, figures)]
    scripts = "".join(f"Plotly.newPlot({orjson.dumps(div).decode()},{_json(f['data'])},{_json(f['layout'])},"
                      f"{{displayModeBar:false,responsive:true}});" for div, f in figures)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{html.escape(data.title)}</title><style>{STYLE}</style>"
            f"<script>{get_plotlyjs()}</script></head><body>{''.join(body)}"
            f"<script>{scripts}</script></body></html>")


def _json(value: Any) -> str:
    # `</` would end the script element early; JSON allows it escaped.
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode().replace("</", "<\\/")


def _badge(severity: str) -> str:
    return f'<span class="sev" style="background:{COLOURS[severity]}">{severity}</span>'


def _summary(data: ReportData) -> str:
    worst = max((r.severity for r in data.results), default=Severity.OK)
    flagged = [r for r in data.results if r.severity]
    rows = "".join(f"<tr><td>{html.escape(r.feature)}</td><td>{html.escape(r.group.name)}</td>"
                   f"<td>{_badge(str(r.severity))}</td><td>{html.escape(_breach_text(r))}</td>"
                   f"<td>{r.events:,}</td></tr>" for r in flagged)
    parts = [f"<h1>{html.escape(data.title)}</h1>",
             f'<p class="muted">profile {html.escape(data.profile.id)} · {data.sketch.events:,} events'
             f"{' from ' + html.escape(data.source) if data.source else ''} · {len(data.windows)} windows</p>",
             f"<p>Worst severity: {_badge(str(worst))} · {len(flagged)} of {len(data.results)} feature/segment "
             "pairs flagged over all events</p>", "<h2>What drifted, worst first</h2>"]
    parts.append("<table><tr><th>feature</th><th>segment</th><th>severity</th><th>statistics behind it</th>"
                 f"<th>events</th></tr>{rows}</table>" if flagged else "<p>Nothing drifted from the profile.</p>")
    if data.coverage_gaps:
        gaps = "".join(f"<tr><td>{html.escape(g['field'])}={html.escape(str(g['value']))}</td>"
                       f"<td>{g['live_share']:.1%}</td><td>{g['events']:,}</td><td>"
                       + (f"{g['accuracy']:.1%} [{g['accuracy_low']:.1%}, {g['accuracy_high']:.1%}] on "
                          f"{g['labelled']:,}" if g.get("labelled") else "") + "</td></tr>"
                       for g in data.coverage_gaps[:20])
        parts.append("<h2>Coverage gaps: values the synthetic data never had</h2><table><tr><th>value</th>"
                     f"<th>share of events</th><th>events</th><th>accuracy (95%) on labels</th></tr>{gaps}</table>")
    if data.slices:
        rows = "".join(f"<tr><td>{html.escape(d['slice'])}</td><td>{d['live_share']:.1%}</td>"
                       f"<td>{d['synthetic_share']:.1%}</td><td>{d['expected_share']:.1%}</td><td>" + (
                           f"{d['accuracy']:.1%} vs {d['reference_accuracy']:.1%} on {d['labelled']:,} labels"
                           + (" <b>weak</b>" if d["weak"] else "")
                           if d.get("accuracy") is not None and d.get("reference_accuracy") is not None else "")
                       + "</td></tr>" for d in data.slices)
        parts.append("<h2>Slices where live traffic departs from the synthetic data</h2><table><tr><th>slice</th>"
                     "<th>live share</th><th>synthetic share</th><th>expected (for a pair: what its two conditions "
                     f"explain)</th><th>accuracy vs the synthetic evaluation</th></tr>{rows}</table>")
    labelled = [a for a in data.accuracy if a["labelled"]]
    if labelled:
        rows = "".join(f"<tr><td>{html.escape(a['provenance'])}</td><td>{a['labelled']:,}</td>"
                       f"<td>{a['accuracy']:.3f} [{a['accuracy_low']:.3f}, {a['accuracy_high']:.3f}]</td>"
                       f"<td>{a['synthetic_accuracy']:.3f}</td><td>{'below' if a['below_synthetic'] else ''}</td></tr>"
                       for a in labelled)
        parts.append("<h2>Accuracy against the synthetic evaluation</h2><table><tr><th>provenance</th>"
                     "<th>labelled</th><th>accuracy [95% interval]</th><th>synthetic evaluation</th><th></th></tr>"
                     f"{rows}</table>")
    return "".join(parts)


def _breach_text(result: FeatureResult) -> str:
    return ", ".join(f"{name} {result.stats[name]:.3g}" for name in result.breaches
                     if result.stats.get(name) is not None)


def _heatmap(data: ReportData, figures: list[tuple[str, dict[str, Any]]]) -> str:
    """Severity by feature and segment (rows) and window (columns)."""
    if not data.windows:
        return ""
    pairs = sorted({(r.feature, r.group.name) for r in data.results if r.severity or r.group.field is None},
                   key=lambda p: (p[1] != "all", p))
    index = {pair: i for i, pair in enumerate(pairs)}
    z = np.zeros((len(pairs), len(data.windows)))
    for column, window in enumerate(data.windows):
        for result in window["results"]:
            segment = "all" if result["segment"] is None else ",".join(f"{k}={v}" for k, v in result["segment"].items())
            row = index.get((result["feature"], segment))
            if row is not None:
                z[row, column] = int(Severity[result["severity"].upper()])
    figure = {"data": [{"type": "heatmap", "z": z, "x": [w["label"] for w in data.windows],
                        "y": [f"{f} [{s}]" for f, s in pairs], "zmin": 0, "zmax": 2, "showscale": False,
                        "colorscale": [[0, COLOURS["ok"]], [0.5, COLOURS["warning"]], [1, COLOURS["critical"]]],
                        "xgap": 1, "ygap": 1, "hovertemplate": "%{y}<br>window %{x}<extra></extra>"}],
              "layout": {"height": 120 + 18 * len(pairs), "margin": {"l": 260, "r": 10, "t": 10, "b": 60},
                         "xaxis": {"title": {"text": "window (first event)"}, "type": "category"},
                         "yaxis": {"autorange": "reversed"}}}
    figures.append(("heatmap", figure))
    return ('<h2>Severity by feature, segment and window</h2><p class="muted">green ok, orange warning, red '
            'critical; rows: all traffic, then flagged segments</p><div id="heatmap" class="chart"></div>')


def _detections(data: ReportData, figures: list[tuple[str, dict[str, Any]]]) -> str:
    if not data.detections:
        return ""
    figure = {"data": [{"type": "scatter", "mode": "markers", "x": [d["offset"] for d in data.detections],
                        "y": [d["feature"] for d in data.detections], "text": [d["detector"] for d in data.detections],
                        "marker": {"size": 10, "color": NOVEL, "symbol": "diamond"},
                        "hovertemplate": "%{y}: %{text} at event %{x}<extra></extra>"}],
              "layout": {"height": 160 + 24 * len({d["feature"] for d in data.detections}),
                         "margin": {"l": 160, "r": 10, "t": 10, "b": 50},
                         "xaxis": {"title": {"text": "event (offset in the input)"}}, "yaxis": {"type": "category"}}}
    figures.append(("detections", figure))
    return '<h2>Online detector firings</h2><div id="detections" class="chart"></div>'


def _features(data: ReportData, figures: list[tuple[str, dict[str, Any]]]) -> str:
    """Per feature in all traffic, and per flagged segment, the distributions side by side."""
    channels: dict[str, list[Channel]] = {}
    for channel in data.profile.channels:
        channels.setdefault(channel.feature, []).append(channel)
    shown = [r for r in data.results if r.group.field is None]
    shown += [r for r in data.results if r.group.field is not None and r.severity][:MAX_SEGMENT_CHARTS]
    shown.sort(key=lambda r: (-r.severity, r.group.field is not None, r.feature))
    parts = ["<h2>Distributions: synthetic profile against live traffic, worst first</h2>"]
    for number, result in enumerate(shown):
        group = data.profile.groups.index(result.group)
        div = f"feature-{number}"
        figure = _distribution(data, channels[result.feature], group)
        if figure is None:
            continue
        figures.append((div, figure))
        parts.append(f'<h3>{html.escape(result.feature)} <span class="muted">[{html.escape(result.group.name)}]</span> '
                     f'{_badge(str(result.severity))}</h3><div class="feature"><div id="{div}" class="chart"></div>'
                     f'<div class="stats">{_stats_table(data, result)}</div></div>')
    return "".join(parts)


def _distribution(data: ReportData, channels: list[Channel], group: int) -> dict[str, Any] | None:
    """Bars of the synthetic and live shares per bin (one subplot per channel of a text feature)."""
    traces: list[dict[str, Any]] = []
    layout: dict[str, Any] = {"barmode": "group", "height": 300, "margin": {"l": 50, "r": 10, "t": 30, "b": 90},
                              "legend": {"orientation": "h", "y": 1.12}, "yaxis": {"tickformat": ".0%"}}
    charted = [c for c in channels if isinstance(c.bins, (NumericBins, CategoryBins, VocabularyBins))]
    if not charted:
        return None
    columns = min(len(charted), 3)  # a text feature's six channels: two rows of three
    rows = -(-len(charted) // columns)
    for number, channel in enumerate(charted):
        axis = "" if number == 0 else str(number + 1)
        row, column = divmod(number, columns)
        labels = _labels(channel)
        reference = distribution(data.profile.reference.counts[channel.name][group])
        live = distribution(data.sketch.counts[channel.name][group])
        novel = channel.bins.novel[:-1]
        for name, shares, colour in (("synthetic", reference, SYNTHETIC), ("live", np.where(novel, 0.0, live), LIVE),
                                     ("live, where the synthetic data had nothing", np.where(novel, live, 0.0),
                                      NOVEL)):
            traces.append({"type": "bar", "name": name, "x": labels, "y": shares, "marker": {"color": colour},
                           "legendgroup": name, "showlegend": number == 0, "xaxis": f"x{axis}", "yaxis": f"y{axis}",
                           "hovertemplate": f"{name} %{{x}}: %{{y:.1%}}<extra></extra>"})
        x_domain = [column / columns + 0.03, (column + 1) / columns - 0.03]
        y_domain = [1 - (row + 1) / rows + 0.3 / rows, 1 - row / rows - 0.02 / rows]
        title = channel.descriptor or ("words" if channel.kind == "vocabulary" else "bin")
        layout[f"xaxis{axis}"] = {"domain": x_domain, "anchor": f"y{axis}", "type": "category", "tickangle": -40,
                                  "title": {"text": title, "standoff": 2}}
        layout[f"yaxis{axis}"] = {"domain": y_domain, "anchor": f"x{axis}", "tickformat": ".0%"}
    layout["height"] = 300 + 330 * (rows - 1)
    return {"data": traces, "layout": layout}


def _labels(channel: Channel) -> list[str]:
    bins = channel.bins
    if isinstance(bins, (NumericBins, CategoryBins)):
        return bins.labels
    return ["in vocabulary", "out of vocabulary"]


def _stats_table(data: ReportData, result: FeatureResult) -> str:
    rows = []
    for name, value in result.stats.items():
        if value is None:
            continue
        judged = judged_name(name)
        threshold = data.settings.threshold(result.feature, judged) if judged else None
        limits = f"{threshold.warning:g} / {threshold.critical:g}" if threshold else ""
        strong = name in result.breaches
        cell = f"<b>{value:.4g}</b>" if strong else f"{value:.4g}"
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{cell}</td><td class=\"muted\">{limits}</td></tr>")
    return (f"<table><tr><th>statistic</th><th>value</th><th>warning / critical</th></tr>{''.join(rows)}</table>"
            f'<p class="muted">{result.events:,} events; in bold, the statistics behind the severity.</p>')
