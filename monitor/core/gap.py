"""The standing reality gap: where a table of real rows differs from the synthetic profile, said in
terms a data scientist acts on.

Severities come from the same `Analyzer.evaluate` that judges live windows (the whole table is one
window). Each feature and segment that differs is explained by the bins that carry its PSI, the
value the real rows pile up on (a spike a generator smoothed away), ranges and tail quantiles (the
synthetic side from the profile's reservoir sample), missing rates and the values the synthetic
data never had.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.core import statistics
from monitor.core.analyzer import Analyzer
from monitor.core.channels import CategoryBins, Channel, NumericBins
from monitor.core.columns import Columns, organic_only
from monitor.core.profile import Profile
from monitor.core.severity import Severity
from monitor.core.sketch import Sketch
from monitor.core.types import DriftSettings, FeatureResult, Group

TOP_BINS = 3
QUANTILES = (0.01, 0.5, 0.99)


@dataclass(frozen=True, slots=True)
class Side:
    """One side of the gap (the synthetic sample, or the real rows) for one feature and segment."""

    rows: int
    missing: float
    top_value: str | None  # the most frequent value
    top_share: float  # its share of the non-missing rows
    distinct: int
    quantiles: dict[str, float] | None = None  # numeric: min, p1, p50, p99, max

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "missing": self.missing, "top_value": self.top_value, "top_share": self.top_share,
                "distinct": self.distinct, "quantiles": self.quantiles}


@dataclass(frozen=True, slots=True)
class FeatureGap:
    result: FeatureResult
    bins: list[dict[str, Any]]  # the bins that carry the PSI: label, synthetic and real share, contribution
    synthetic: Side | None
    real: Side | None
    unseen: list[tuple[str, float]]  # values the synthetic data never had, with their share of real rows

    def to_json(self) -> dict[str, Any]:
        return {**self.result.to_json(), "bins": self.bins,
                "synthetic": self.synthetic.to_json() if self.synthetic else None,
                "real": self.real.to_json() if self.real else None,
                "unseen": [{"value": v, "share": s} for v, s in self.unseen]}


def reality_gap(profile: Profile, real: Columns, settings: DriftSettings | None = None) -> list[FeatureGap]:
    """Every feature in every segment, worst first, each with what explains its gap (organic rows
    only: a table of real rows may hold synthetic ones too)."""
    real = organic_only(real, profile.spec.provenance_column)
    analyzer = Analyzer(profile, settings)
    sketch = analyzer.sketcher.empty()
    analyzer.sketcher.update(sketch, real, analyzer.sketcher.encode(real))
    channels = {c.feature: c for c in profile.channels if c.kind in ("numeric", "categorical")}
    gaps = []
    for result in analyzer.evaluate(sketch):
        channel = channels.get(result.feature)
        if channel is None:  # text and performance: their statistics say it
            gaps.append(FeatureGap(result, [], None, None, []))
            continue
        g = profile.groups.index(result.group)
        reference = profile.reference_probabilities(channel, g)
        bins = _carrying_bins(channel, reference, sketch.counts[channel.name][g])
        synthetic, live = _rows(profile.sample, result.group), _rows(real, result.group)
        gaps.append(FeatureGap(result, bins, _side(channel, profile.sample[channel.column][synthetic]),
                               _side(channel, real[channel.column][live]),
                               _unseen(channel, real[channel.column][live])))
    return gaps


def explain(profile: Profile, results: list[FeatureResult], sketch: Sketch) -> list[dict[str, Any]]:
    """The live report of the gap, for /status: each flagged result (judged against `profile`) with
    the bins that carry its PSI, missing rates, and the values the synthetic data never had, all
    from a window's sketch (which keeps counts, not rows: no quantiles)."""
    channels = {c.feature: c for c in profile.channels if c.kind in ("numeric", "categorical")}
    report = []
    for result in (r for r in results if r.severity):
        channel = channels.get(result.feature)
        if channel is None:  # text and performance: their statistics say it
            report.append(result.to_json())
            continue
        g = profile.groups.index(result.group)
        reference, counts = profile.reference_probabilities(channel, g), sketch.counts[channel.name][g]
        unseen = sorted(sketch.gaps.get(result.feature, {}).items(), key=lambda kv: -kv[1])[:5]
        report.append({**result.to_json(), "bins": _carrying_bins(channel, reference, counts),
                       "missing": {"synthetic": float(reference[-1]), "live": float(statistics.missing_rate(counts))},
                       "unseen": [{"value": v, "events": n} for v, n in unseen]})
    return report


def _rows(columns: Columns, group: Group) -> np.ndarray:
    n = len(next(iter(columns.values())))
    if group.field is None:
        return np.ones(n, dtype=bool)
    return np.asarray(columns[group.field] == group.value, dtype=bool)


def _carrying_bins(channel: Channel, reference: np.ndarray, counts: np.ndarray) -> list[dict[str, Any]]:
    p, q = statistics.distribution(reference), statistics.distribution(counts)
    terms = statistics.psi_terms(p, q)
    labels = channel.bins.labels  # type: ignore[union-attr]
    return [{"bin": labels[i], "synthetic": float(p[i]), "real": float(q[i]), "psi": float(terms[i])}
            for i in np.argsort(-terms)[:TOP_BINS] if terms[i] > 0]


def _side(channel: Channel, values: np.ndarray) -> Side:
    if isinstance(channel.bins, NumericBins):
        present = values[~np.isnan(values.astype(np.float64))].astype(np.float64)
        missing = 1.0 - len(present) / len(values) if len(values) else 0.0
        quantiles = None
        if len(present):
            levels = np.quantile(present, QUANTILES)
            tails = {f"p{round(q * 100)}": float(v) for q, v in zip(QUANTILES, levels, strict=True)}
            quantiles = {"min": float(present.min()), **tails, "max": float(present.max())}
        distinct, counts = np.unique(present, return_counts=True)
        top = f"{distinct[np.argmax(counts)]:.6g}" if len(counts) else None
    else:
        present = np.array([v for v in values if v is not None], dtype=object)
        missing = 1.0 - len(present) / len(values) if len(values) else 0.0
        quantiles = None
        distinct, counts = np.unique(present.astype(str), return_counts=True)
        top = str(distinct[np.argmax(counts)]) if len(counts) else None
    share = float(counts.max() / counts.sum()) if len(counts) else 0.0
    return Side(len(values), float(missing), top, share, len(distinct), quantiles)


def _unseen(channel: Channel, values: np.ndarray) -> list[tuple[str, float]]:
    if not isinstance(channel.bins, CategoryBins) or not len(values):
        return []
    unseen = [v for v in values if v is not None and v not in channel.bins.known]
    names, counts = np.unique(np.array(unseen, dtype=str), return_counts=True)
    order = np.argsort(-counts, kind="stable")[:10]
    return [(str(names[i]), float(counts[i] / len(values))) for i in order]


def render_text(gaps: list[FeatureGap], everything: bool = False) -> str:
    """The report as text: one block per feature and segment that differs (or all), worst first."""
    lines = []
    for gap in gaps:
        result = gap.result
        if result.severity == Severity.OK and not everything:
            continue
        judged = ", ".join(f"{name} {result.stats[name]:.3g}" for name in result.breaches
                           if result.stats.get(name) is not None)
        lines.append(f"{result.feature} [{result.group.name}] {result.severity}" + (f": {judged}" if judged else ""))
        synthetic, real = gap.synthetic, gap.real
        if synthetic and real:
            if real.top_value is not None:
                lines.append(f"  most frequent real value {real.top_value!r}: {real.top_share:.1%} of real rows; "
                             f"synthetic {synthetic.top_value!r}: {synthetic.top_share:.1%}")
            if synthetic.quantiles and real.quantiles:
                lines.append("  range and tails: synthetic " + _quantiles(synthetic.quantiles) +
                             " | real " + _quantiles(real.quantiles))
            if abs(real.missing - synthetic.missing) >= 0.01:
                lines.append(f"  missing: synthetic {synthetic.missing:.1%}, real {real.missing:.1%}")
        for row in gap.bins:
            lines.append(f"  bin {row['bin']}: real {row['real']:.1%}, synthetic {row['synthetic']:.1%}")
        if gap.unseen:
            lines.append("  never in the synthetic data: " + ", ".join(f"{v!r} {s:.1%}" for v, s in gap.unseen))
    return "\n".join(lines) if lines else "no feature differs from the synthetic profile"


def _quantiles(quantiles: dict[str, float]) -> str:
    return " ".join(f"{name} {value:.4g}" for name, value in quantiles.items())
