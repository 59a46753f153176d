"""The statistics core in one place: columns -> sketch -> comparison with the profile -> severities.

`check` and the streaming worker both drive an `Analyzer`: they differ only in where events come
from and where results go, so both compute exactly the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor import statistics
from monitor.calibration import NullBounds
from monitor.channels import Channel, Encoded, NumericBins
from monitor.columns import Columns
from monitor.detectors import Detection, DetectorSettings, DriftDetectors, block_counts
from monitor.profile import Profile
from monitor.severity import DEFAULT_THRESHOLDS, Severity, Threshold, judge
from monitor.sketch import Group, Sketch


@dataclass(frozen=True, slots=True)
class DriftSettings:
    """How drift is judged; see the README's "Severities" section."""

    thresholds: dict[str, Threshold] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    feature_thresholds: dict[str, dict[str, Threshold]] = field(default_factory=dict)
    false_alarm_rate: float = 0.01  # per window, over all features x segments x statistics
    min_events: int = 100  # a group with fewer events in a window is reported but not judged
    detector: DetectorSettings = field(default_factory=DetectorSettings)

    def threshold(self, feature: str, statistic: str) -> Threshold:
        return self.feature_thresholds.get(feature, {}).get(statistic) or self.thresholds[statistic]


@dataclass(frozen=True, slots=True)
class FeatureResult:
    feature: str
    group: Group
    kind: str
    events: int
    stats: dict[str, float | None]
    severity: Severity
    breaches: tuple[str, ...]  # the statistics that set the severity

    def to_json(self) -> dict[str, Any]:
        return {"feature": self.feature, "segment": self.group.label, "kind": self.kind, "events": self.events,
                "stats": self.stats, "severity": str(self.severity), "breaches": list(self.breaches)}


@dataclass(frozen=True, slots=True)
class CoverageGap:
    field: str
    value: str
    live_share: float
    events: int

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "value": self.value, "live_share": self.live_share, "events": self.events}


class Analyzer:
    """Compares live windows with a synthetic profile: `observe` sketches a batch and feeds the
    detectors, `evaluate` judges a (possibly merged) window sketch, `coverage_gaps` lists what the
    synthetic data never had."""

    def __init__(self, profile: Profile, settings: DriftSettings | None = None) -> None:
        self.profile = profile
        self.settings = settings or DriftSettings()
        self.sketcher = profile.sketcher()
        channels, groups = profile.channels, profile.groups
        self._references = {(c.name, g): profile.reference_probabilities(c, g)
                            for c in channels for g in range(len(groups))}
        self._features: dict[str, list[Channel]] = {}
        for channel in channels:
            self._features.setdefault(channel.feature, []).append(channel)
        tests = sum(len(c.judged) for c in channels) * len(groups)
        self.bounds = NullBounds(tail=self.settings.false_alarm_rate / tests)
        block = self.settings.detector.block
        warmup = self.sketcher.encode(profile.sample)
        self.detectors = DriftDetectors(
            channels, {c.name: self._references[(c.name, 0)] for c in channels}, self.settings.detector,
            {name: block_counts(e.index, self._size(name), block) for name, e in warmup.items()})

    def _size(self, channel: str) -> int:
        return self.profile.reference.counts[channel].shape[1]

    def observe(self, columns: Columns, offsets: np.ndarray) -> tuple[Sketch, list[Detection]]:
        """Sketches a batch and runs the detectors over it; `offsets` are the rows' stream positions."""
        encoded = self.sketcher.encode(columns)
        sketch = self.sketcher.empty()
        self.sketcher.update(sketch, columns, encoded)
        return sketch, self.detect(encoded, offsets)

    def detect(self, encoded: dict[str, Encoded], offsets: np.ndarray) -> list[Detection]:
        block = self.settings.detector.block
        blocks = {name: block_counts(e.index, self._size(name), block)
                  for name, e in encoded.items() if e.owner is None}
        ends = offsets[np.minimum(np.arange(block, len(offsets) + block, block), len(offsets)) - 1]
        return self.detectors.update(blocks, ends)

    def evaluate(self, sketch: Sketch) -> list[FeatureResult]:
        """Every feature in every group that saw traffic, worst first."""
        results = []
        for feature, channels in self._features.items():
            for g, group in enumerate(self.profile.groups):
                events = int(sketch.counts[channels[0].name][g].sum()) if channels[0].kind != "vocabulary" else 0
                if g and not events:
                    continue
                results.append(self._evaluate_feature(feature, channels, g, group, sketch))
        return sorted(results, key=lambda r: (-r.severity, r.feature, r.group.name))

    def _evaluate_feature(self, feature: str, channels: list[Channel], g: int, group: Group,
                          sketch: Sketch) -> FeatureResult:
        stats: dict[str, float | None] = {}
        severity, breaches = Severity.OK, []
        events = 0
        for channel in channels:
            counts = sketch.counts[channel.name][g]
            reference = self._references[(channel.name, g)]
            prefix = f"{channel.descriptor}_" if channel.descriptor else ""
            described = describe(channel, reference, counts, self.profile.reference, sketch, g)
            stats.update({prefix + k: v for k, v in described.items()})
            if channel.kind != "vocabulary":
                events = max(events, int(counts.sum()))
            present = int(counts[:-1].sum())
            for statistic in channel.judged:
                value = float(statistics.JUDGED[statistic](reference, counts, channel.bins.novel))
                stats[prefix + statistic] = value
                n = int(counts.sum()) if statistic == "missing_rate_change" else present
                if n < self.settings.min_events:
                    continue
                bound = self.bounds.bound(f"{channel.name}/{g}", reference, channel.bins.novel, statistic, n)
                verdict = judge(abs(value) if statistic == "missing_rate_change" else value,
                                self.settings.threshold(feature, statistic), bound)
                if verdict > Severity.OK and verdict >= severity:
                    breaches = breaches if verdict == severity else []
                    breaches.append(prefix + statistic)
                    severity = verdict
        return FeatureResult(feature, group, channels[0].kind if len(channels) == 1 else "text", events,
                             stats, severity, tuple(breaches))

    def coverage_gaps(self, sketch: Sketch) -> list[CoverageGap]:
        """Segment values and categories the synthetic data never had, largest first."""
        gaps = [CoverageGap(name, value, count / sketch.events if sketch.events else 0.0, count)
                for name, values in sketch.gaps.items() for value, count in values.items()]
        return sorted(gaps, key=lambda gap: (-gap.events, gap.field, gap.value))


def describe(channel: Channel, reference: np.ndarray, counts: np.ndarray, reference_sketch: Sketch,
             live_sketch: Sketch, g: int) -> dict[str, float | None]:
    """The reported (not judged) statistics of one channel in one group."""
    if not counts[:-1].sum():
        return {}
    p, q = statistics.distribution(reference), statistics.distribution(counts)
    kind = channel.kind
    if kind in ("vocabulary", "performance"):
        share = float(statistics.share(counts, channel.bins.novel))
        return {"oov_share": share} if kind == "vocabulary" else {"accuracy": 1.0 - share}
    stats = {"psi": float(statistics.psi(p, q)), "js": float(statistics.js_distance(p, q))}
    if kind == "categorical":
        stats["chi2"] = float(statistics.chi_square(p, counts))
        return stats
    bins = channel.bins
    assert isinstance(bins, NumericBins)
    stats["ks"] = float(statistics.ks(p, q))
    reference_mean, reference_sd = _moments(reference_sketch, channel.name, g)
    live_mean, _ = _moments(live_sketch, channel.name, g)
    spread = reference_sd if reference_sd > 0 else 1.0
    stats["wasserstein"] = statistics.wasserstein(
        *_atoms(reference_sketch, channel.name, g), *_atoms(live_sketch, channel.name, g)) / spread
    stats["tail_share"] = float(statistics.share(counts, bins.tail))
    stats["mean"] = live_mean
    stats["mean_shift_sd"] = (live_mean - reference_mean) / spread
    return stats


def _moments(sketch: Sketch, channel: str, g: int) -> tuple[float, float]:
    n = sketch.counts[channel][g][:-1].sum()
    if not n:
        return float("nan"), 0.0
    mean = sketch.sums[channel][g].sum() / n
    variance = sketch.squares[channel][g].sum() / n - mean * mean
    return float(mean), float(np.sqrt(max(variance, 0.0)))


def _atoms(sketch: Sketch, channel: str, g: int) -> tuple[np.ndarray, np.ndarray]:
    """Each non-empty bin as one atom at its values' mean, with its share of the mass."""
    counts = sketch.counts[channel][g][:-1].astype(np.float64)
    sums = sketch.sums[channel][g][:-1]
    filled = counts > 0
    return sums[filled] / counts[filled], counts[filled] / counts.sum()
