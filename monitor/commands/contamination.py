"""`synthdrift contamination`: how much of an evaluation set its training set already holds, and how
much a synthetic evaluation flatters the model against organic labels.

The evaluation table is read whole (it is the smaller one); the training table streams past it in
chunks, as `profile build` reads it; the organic table streams too, kept as labelled counts per
segment and a sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from monitor.core import contamination as core
from monitor.core.channels import PerformanceBins
from monitor.core.columns import Columns, Reservoir, concatenate, take
from monitor.core.errors import UsageError
from monitor.core.severity import Severity
from monitor.core.spec import Spec
from monitor.core.statistics import wilson_interval
from monitor.core.tables import read_chunks

# When a check is a warning, and when critical: the share of evaluation rows it flags (for
# closeness, the share beyond what held-out training rows show; eval-likeness: the AUC; flattery:
# the index). Closeness and flattery count only when their 95% interval clears the null too.
THRESHOLDS = {
    "exact_duplicates": (0.01, 0.05),
    "near_duplicates": (0.01, 0.05),
    "dirty_ngrams": (0.05, 0.2),
    "shared_templates": (0.2, 0.5),
    "close_rows": (0.1, 0.25),
    "eval_likeness": (0.7, 0.9),
    "eval_flattery": (0.02, 0.05),
}
CLOSENESS_ROWS = 2000  # evaluation and organic rows whose nearest training row is searched
LIKENESS_ROWS = 5000  # evaluation and organic rows per side for the eval-likeness classifier


def _severity(check: str, value: float) -> Severity:
    warning, critical = THRESHOLDS[check]
    return Severity.CRITICAL if value >= critical else Severity.WARNING if value >= warning else Severity.OK


def scan(spec: Spec, train: Path, evaluation_path: Path, organic_path: Path | None = None) -> dict[str, Any]:
    """The whole report, as JSON-ready data; see the README's "Evaluation contamination"."""
    evaluation = concatenate(list(read_chunks(evaluation_path, spec)))
    rows = len(next(iter(evaluation.values())))
    if not rows:
        raise UsageError(f"{evaluation_path}: the evaluation table has no rows")
    index = core.Scan(spec, evaluation)
    for chunk in read_chunks(train, spec):
        index.add(chunk)
    organic, organic_counts, organic_rows = _organic(spec, organic_path) if organic_path else (None, {}, 0)
    rng = np.random.default_rng(core.SEED)

    def sample(columns: Columns, most: int) -> Columns:
        n = len(next(iter(columns.values())))
        return take(columns, np.sort(rng.choice(n, most, replace=False))) if n > most else columns

    reference, holdout = core.split_sample(index.train_sample, holdout=index.train_sample.size // 5)
    close = core.closeness(spec, reference, holdout, sample(evaluation, CLOSENESS_ROWS),
                           sample(organic, CLOSENESS_ROWS) if organic else None)
    likeness = core.eval_likeness(spec, sample(evaluation, LIKENESS_ROWS), sample(organic, LIKENESS_ROWS)) \
        if organic else None
    copied = index.exact.rows | index.near_duplicates.rows | index.dirty.rows
    report: dict[str, Any] = {
        "train": {"path": train.name, "rows": index.train_rows},
        "eval": {"path": evaluation_path.name, "rows": rows},
        "organic": {"path": organic_path.name, "rows": organic_rows} if organic_path else None,
        "exact_duplicates": _finding(index.exact),
        "near_duplicates": {**_finding(index.near_duplicates), "threshold": index.near},
        "dirty_ngrams": {**_finding(index.dirty), "n": index.n, "too_short": int(index.short.sum()),
                         **_accuracy_by_flag(spec, evaluation, index.dirty.rows)} if index.texts else None,
        "shared_templates": {**_finding(index.templates), "top": index.skeletons} if index.texts else None,
        "closeness": close,
        "eval_likeness": likeness,
        "flattery": core.flattery(spec, evaluation, organic_counts, ~copied),
        "segments": _segments(spec, evaluation, index),
    }
    report["findings"] = _findings(report)
    report["worst"] = str(max((Severity[f["severity"].upper()] for f in report["findings"]), default=Severity.OK))
    return report


def _organic(spec: Spec, path: Path) -> tuple[Columns, dict[str | None, tuple[int, int]], int]:
    """A sample of the organic table, its right and labelled predictions per segment, its rows."""
    reservoir = Reservoir(max(CLOSENESS_ROWS, LIKENESS_ROWS), core.SEED)
    counts: dict[str | None, list[int]] = {}
    rows = 0
    for chunk in read_chunks(path, spec):
        rows += len(next(iter(chunk.values())))
        reservoir.add(chunk)
        if not (spec.label and spec.prediction_label):
            continue
        outcome = PerformanceBins.index(chunk[spec.label], chunk[spec.prediction_label])
        labelled = outcome < 2
        groups = [(None, labelled)] + [(f"{name}={value}", labelled & rows_with)
                                       for name, value, rows_with in core.segment_rows(spec, chunk)]
        for key, chosen in groups:
            counted = counts.setdefault(key, [0, 0])
            counted[0] += int((outcome[chosen] == 0).sum())
            counted[1] += int(chosen.sum())
    if not rows:
        raise UsageError(f"{path}: the organic table has no rows")
    return reservoir.sample, {k: (v[0], v[1]) for k, v in counts.items()}, rows


def _finding(finding: core.Finding) -> dict[str, Any]:
    return {"rows": int(finding.rows.sum()), "share": finding.share, "examples": finding.examples}


def _accuracy_by_flag(spec: Spec, evaluation: Columns, flagged: np.ndarray) -> dict[str, Any]:
    """Accuracy on the flagged and the clean evaluation rows, with 95% Wilson intervals."""
    if not (spec.label and spec.prediction_label):
        return {}
    outcome = PerformanceBins.index(evaluation[spec.label], evaluation[spec.prediction_label])
    result = {}
    for name, chosen in (("accuracy_dirty", flagged), ("accuracy_clean", ~flagged)):
        labelled = chosen & (outcome < 2)
        right, n = int((outcome[labelled] == 0).sum()), int(labelled.sum())
        low, high = wilson_interval(np.array(right), np.array(n))
        result[name] = {"accuracy": right / n, "low": float(low), "high": float(high), "labelled": n} if n else None
    return result


def _segments(spec: Spec, evaluation: Columns, index: core.Scan) -> list[dict[str, Any]]:
    """Each check's share of evaluation rows, per segment value."""
    checks = {"exact_duplicates": index.exact.rows, "near_duplicates": index.near_duplicates.rows}
    if index.texts:
        checks |= {"dirty_ngrams": index.dirty.rows, "shared_templates": index.templates.rows}
    return [{"segment": {name: value}, "rows": int(members.sum()),
             **{check: float(flags[members].mean()) for check, flags in checks.items()}}
            for name, value, members in core.segment_rows(spec, evaluation)]


def _findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every check that reaches a severity, overall or in a segment, worst first."""
    found = []

    def add(check: str, value: float, segment: dict[str, Any] | None = None, judged: float | None = None) -> None:
        severity = _severity(check, value if judged is None else judged)
        if severity:
            found.append({"check": check, "segment": segment, "value": value, "severity": str(severity)})

    for check in ("exact_duplicates", "near_duplicates", "dirty_ngrams", "shared_templates"):
        if report[check] is not None:
            add(check, report[check]["share"])
    for row in report["segments"]:
        for check in ("exact_duplicates", "near_duplicates", "dirty_ngrams", "shared_templates"):
            if check in row and row["rows"] >= 100:
                add(check, row[check], row["segment"])
    close = report["closeness"]
    if close and close["close_share_low"] > close["expected"]:
        add("close_rows", close["close_share"], judged=close["close_share"] - close["expected"])
    if report["eval_likeness"]:
        add("eval_likeness", report["eval_likeness"]["auc"])
    for row in report["flattery"]:
        if row["low"] > 0:
            add("eval_flattery", row["index"], row["segment"])
    return sorted(found, key=lambda f: (-Severity[f["severity"].upper()], -f["value"], f["check"]))


def render_text(report: dict[str, Any]) -> str:
    """The report for a person: what the evaluation shares with training, then how it flatters."""
    train, evaluation = report["train"], report["eval"]
    lines = [f"synthdrift contamination: {evaluation['rows']:,} evaluation rows ({evaluation['path']}) against "
             f"{train['rows']:,} training rows ({train['path']})"
             + (f" and {report['organic']['rows']:,} organic rows ({report['organic']['path']})"
                if report["organic"] else ""), f"worst: {report['worst']}", ""]
    for check, title in (("exact_duplicates", "exact duplicates"), ("near_duplicates", "near duplicates"),
                         ("dirty_ngrams", "dirty items"), ("shared_templates", "shared templates")):
        finding = report[check]
        if finding is None:
            continue
        detail = {"near_duplicates": f" (word-bigram Jaccard >= {finding.get('threshold')})",
                  "dirty_ngrams": f" (sharing a {finding.get('n')}-gram of words with training texts)"}.get(check, "")
        lines.append(f"{title:18} {finding['share']:7.1%} of evaluation rows ({finding['rows']:,}){detail}")
    dirty = report["dirty_ngrams"]
    if dirty and dirty.get("accuracy_dirty") and dirty.get("accuracy_clean"):
        lines.append(f"  accuracy on dirty items {dirty['accuracy_dirty']['accuracy']:.3f}, on clean ones "
                     f"{dirty['accuracy_clean']['accuracy']:.3f}")
    for example in report["near_duplicates"]["examples"][:3]:
        lines.append(f"  near twin ({example['jaccard']}): {example['eval']!r} ~ {example['train']!r}")
    templates = report["shared_templates"]
    for row in (templates or {}).get("top", [])[:5]:
        lines.append(f"  template in {row['eval_rows']:,} evaluation and {row['train_rows']:,} training rows: "
                     f"{row['skeleton']!r}")
    close = report["closeness"]
    if close:
        lines.append(f"closeness          {close['close_share']:7.1%} of evaluation rows as near a training row as "
                     f"the nearest {close['expected']:.0%} of held-out training rows (median distance: evaluation "
                     f"{close['eval_median']:.3f}, held-out {close['holdout_median']:.3f}"
                     + (f", organic {close['organic_median']:.3f}" if close["organic_median"] is not None else "")
                     + ")")
    likeness = report["eval_likeness"]
    if likeness:
        top = ", ".join(f"{f['feature']} {f['auc']:.2f}" for f in likeness["features"][:3])
        lines.append(f"eval-likeness      AUC {likeness['auc']:.3f} telling evaluation from organic rows "
                     f"(0.5: indistinguishable); most telling: {top}")
    for row in report["flattery"]:
        name = "all" if row["segment"] is None else ",".join(f"{k}={v}" for k, v in row["segment"].items())
        clean = f"; on clean rows {row['clean_index']:+.3f}" if row["clean_index"] is not None else ""
        lines.append(f"eval flattery      {name:20} {row['index']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]: "
                     f"evaluation {row['eval_accuracy']:.3f} vs organic {row['organic_accuracy']:.3f}{clean}")
    if report["findings"]:
        lines += ["", "findings:"]
        for finding in report["findings"]:
            segment = "" if finding["segment"] is None else " in " + ",".join(
                f"{k}={v}" for k, v in finding["segment"].items())
            lines.append(f"  {finding['severity']:9} {finding['check']}{segment}: {finding['value']:.3f}")
    return "\n".join(lines)
