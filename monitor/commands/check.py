"""`synthdrift check`: replays a file of live events through the statistics core, window by window."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Iterable

import numpy as np

from monitor.core.analyzer import Analyzer
from monitor.core.columns import Columns, concatenate
from monitor.core.events import SLICE_EVENTS, EventParser, to_columns
from monitor.core.profile import Profile
from monitor.core.severity import Severity
from monitor.core.sketch import Sketch
from monitor.core.types import DriftSettings

MAX_REPORTED_INVALID = 1000  # invalid lines listed one by one; all are counted


@dataclass
class CheckReport:
    profile: str
    window: int
    reference: str = "synthetic"  # what windows are judged against: the synthetic profile or an organic baseline
    events: int = 0
    invalid: int = 0
    invalid_lines: list[dict[str, Any]] = field(default_factory=list)
    windows: list[dict[str, Any]] = field(default_factory=list)
    detections: list[dict[str, Any]] = field(default_factory=list)
    coverage_gaps: list[dict[str, Any]] = field(default_factory=list)
    reality_gap: list[dict[str, Any]] = field(default_factory=list)  # with a baseline: all events vs synthetic
    # All events against the synthetic evaluation: by provenance, and on organic traffic by segment.
    accuracy: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    slices: list[dict[str, Any]] = field(default_factory=list)  # all events against the synthetic profile
    worst: Severity = Severity.OK
    whole: Sketch | None = None  # every event's sketch (for `report`; not in the JSON)

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "reference": self.reference, "window": self.window, "events": self.events,
                "invalid": self.invalid, "worst": str(self.worst), "windows": self.windows,
                "detections": self.detections, "coverage_gaps": self.coverage_gaps, "reality_gap": self.reality_gap,
                "accuracy": self.accuracy, "slices": self.slices, "invalid_lines": self.invalid_lines}


def check(profile: Profile, lines: Iterable[bytes], window: int = 5000,
          settings: DriftSettings | None = None, baseline: Profile | None = None) -> CheckReport:
    """Runs every non-blank line of `lines` through validation and the core, `window` events at a
    time: the worker's path, a slice of `SLICE_EVENTS` lines at a time through the same parser.
    With an organic `baseline` (of `profile`), windows are judged against it, and the whole file
    against the synthetic profile is the reality gap."""
    parser = EventParser(profile.spec, structs=True)
    analyzer = Analyzer(baseline or profile, settings)
    report = CheckReport(profile=profile.id, window=window, reference="organic" if baseline else "synthetic")
    whole = analyzer.sketcher.empty()
    numbered = ((number, line) for number, line in enumerate(lines, 1) if line.strip())
    start = 0
    while rows := list(islice(numbered, window)):
        parts: list[Columns] = []
        offsets: list[np.ndarray] = []
        invalid_in_window = 0
        for first in range(0, len(rows), SLICE_EVENTS):
            part = rows[first:first + SLICE_EVENTS]
            events, invalid = parser.parse_many([line.rstrip(b"\r\n") for _, line in part])
            invalid_in_window += len(invalid)
            for index, problem in invalid.items():
                if len(report.invalid_lines) < MAX_REPORTED_INVALID:
                    report.invalid_lines.append({"line": part[index][0], "offset": start + first + index,
                                                 "reason": str(problem.reason), "detail": problem.detail})
            if events:
                parts.append(to_columns(events, profile.spec))
                kept = np.arange(start + first, start + first + len(part))
                offsets.append(np.delete(kept, list(invalid)) if invalid else kept)
        report.invalid += invalid_in_window
        end = start + len(rows)
        if parts:
            sketch, detections = analyzer.observe(concatenate(parts), np.concatenate(offsets))
            whole = whole.merge(sketch)
            report.detections += [{"segment": None, **d.to_json()} for d in detections]
            results, gaps, found = analyzer.evaluate(sketch), analyzer.coverage_gaps(sketch), analyzer.slices(sketch)
        else:
            results, gaps, found = [], [], []
        worst = max((r.severity for r in results), default=Severity.OK)
        report.worst = max(report.worst, worst)
        report.windows.append({"start": start, "end": end, "events": len(rows) - invalid_in_window,
                               "invalid": invalid_in_window,
                               "worst": str(worst), "results": [r.to_json() for r in results],
                               "coverage_gaps": [g.to_json() for g in gaps], "slices": [f.to_json() for f in found]})
        start = end
    report.events = start - report.invalid  # valid events: with `invalid`, every non-blank line
    report.whole = whole
    report.coverage_gaps = [g.to_json() for g in analyzer.coverage_gaps(whole)]
    synthetic = Analyzer(profile, settings) if baseline else analyzer
    gap = synthetic.evaluate(whole)
    report.slices = [f.to_json() for f in synthetic.slices(whole)]
    if baseline:
        report.reality_gap = [r.to_json() for r in gap if r.severity]
    report.accuracy = {"by_provenance": [s.to_json() for s in synthetic.sources(whole) if s.labelled],
                       "by_segment": [r.to_json() for r in gap if r.kind == "performance" and r.group.field
                                      and r.stats["labelled"]]}
    return report


def render_text(report: CheckReport) -> str:
    """A readable summary: flagged features and segments worst first, detections, gaps, bad lines."""
    lines = [f"synthdrift check: {report.events:,} events ({report.invalid:,} invalid) in {len(report.windows)} "
             f"windows of {report.window:,}, against profile {report.profile}"
             + (" (drift against its organic baseline)" if report.reference == "organic" else ""),
             f"worst severity: {report.worst}", ""]
    flagged: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
    pairs = set()
    for index, window in enumerate(report.windows):
        for result in window["results"]:
            key = (result["feature"], _segment_name(result["segment"]))
            pairs.add(key)
            if result["severity"] != "ok":
                flagged.setdefault(key, []).append((index, result))
    if flagged:
        rows = sorted(flagged.items(), key=lambda kv: (-max(Severity[r["severity"].upper()] for _, r in kv[1]),
                                                       -len(kv[1]), kv[0]))
        lines.append(f"{'feature':24} {'segment':20} {'worst':9} {'flagged':>9} {'from':>9}  worst statistic")
        for (feature, segment), hits in rows:
            worst = max(hits, key=lambda h: Severity[h[1]["severity"].upper()])[1]
            statistic = worst["breaches"][0]
            first = report.windows[hits[0][0]]["start"]
            lines.append(f"{feature:24} {segment:20} {worst['severity']:9} {len(hits):>4}/{len(report.windows):<4} "
                         f"{first:>9,}  {statistic} {worst['stats'][statistic]:.4g}")
    lines.append(f"{len(pairs) - len(flagged)} of {len(pairs)} feature/segment pairs ok in every window")
    if report.detections:
        lines += ["", "detections (first per feature):"]
        seen = set()
        for d in report.detections:
            if d["feature"] not in seen:
                seen.add(d["feature"])
                lines.append(f"  {d['feature']:24} {d['detector']} on {d['channel']} {d['signal']} at offset "
                             f"{d['offset']:,}")
    if report.reality_gap:
        lines += ["", "reality gap (all events against the synthetic profile):"]
        lines += [f"  {r['feature']:24} {_segment_name(r['segment']):20} {r['severity']:9} "
                  f"{r['breaches'][0]} {r['stats'][r['breaches'][0]]:.4g}" for r in report.reality_gap[:20]]
    by_provenance, by_segment = report.accuracy.get("by_provenance"), report.accuracy.get("by_segment")
    if by_provenance or by_segment:
        lines += ["", "accuracy against the synthetic evaluation (95% interval; by segment: organic traffic):"]
        lines += [_accuracy_line(f"provenance {s['provenance']}", s["labelled"], s["accuracy"], s["accuracy_low"],
                                 s["accuracy_high"], s["synthetic_accuracy"]) for s in by_provenance or []]
        lines += [_accuracy_line(f"segment {_segment_name(r['segment'])}", int(r["stats"]["labelled"]),
                                 *(r["stats"][k] for k in ("accuracy", "accuracy_low", "accuracy_high",
                                                           "reference_accuracy"))) for r in by_segment or []]
    if report.slices:
        lines += ["", "slices where live traffic departs from the synthetic data (share of events, live vs synthetic; "
                      "for two conditions, vs what their marginals explain; accuracy vs the synthetic evaluation):"]
        lines += [f"  {s['slice']:56} {s['live_share']:7.1%} vs {s['expected_share']:6.1%}" + (
                  f"   accuracy {s['accuracy']:.1%} vs {s['reference_accuracy']:.1%} on {s['labelled']:,} labels"
                  + ("  WEAK" if s["weak"] else "") if s["accuracy"] is not None and s["reference_accuracy"] is not None
                  else "") for s in report.slices]
    if report.coverage_gaps:
        lines += ["", "coverage gaps (values the synthetic data never had):"]
        lines += [f"  {g['field']}={g['value']}: {g['live_share']:.1%} of events" + (
                  f", accuracy {g['accuracy']:.1%} [{g['accuracy_low']:.1%}, {g['accuracy_high']:.1%}] "
                  f"on {g['labelled']:,} labels" if g["labelled"] else "") for g in report.coverage_gaps[:20]]
    if report.invalid_lines:
        lines += ["", "invalid lines:"]
        lines += [f"  line {i['line']}: {i['reason']}: {i['detail']}" for i in report.invalid_lines[:20]]
        if report.invalid > 20:
            lines.append(f"  … {report.invalid - 20:,} more")
    return "\n".join(lines)


def _accuracy_line(name: str, labelled: int, accuracy: float, low: float, high: float, synthetic: float) -> str:
    below = "  below the synthetic evaluation" if high < synthetic else ""
    return (f"  {name:32} {labelled:>8,} labelled  {accuracy:.3f} [{low:.3f}, {high:.3f}]  "
            f"synthetic {synthetic:.3f}{below}")


def _segment_name(segment: dict[str, str] | None) -> str:
    return "all" if segment is None else ",".join(f"{k}={v}" for k, v in segment.items())


def reached(report: CheckReport, fail_on: str | None) -> bool:
    return fail_on is not None and report.worst >= Severity[fail_on.upper()]

