"""The statistics core in one place: columns -> sketch -> comparison with the profile -> severities.

`check` and the streaming worker both drive an `Analyzer`: they differ only in where events come
from and where results go, so both compute exactly the same numbers.
"""

from __future__ import annotations

import numpy as np

from monitor.core import slices, statistics
from monitor.core.calibration import NullBounds
from monitor.core.channels import Channel, Encoded, NumericBins
from monitor.core.columns import Columns, take
from monitor.core.detectors import DriftDetectors, block_counts, block_ends
from monitor.core.profile import Profile
from monitor.core.severity import Severity, Threshold, judge
from monitor.core.sketch import Sketch
from monitor.core.slices import Slice
from monitor.core.types import CoverageGap, Detection, DriftSettings, FeatureResult, SourceResult

BLOCK_LOOKS = 1000
WARMUP_BLOCKS = 50  # detector warm-up blocks drawn from a baseline that has no rows


class Analyzer:
    """Compares live windows with a synthetic profile: `observe` sketches a batch and feeds the
    detectors, `evaluate` judges a (possibly merged) window sketch, `coverage_gaps` lists what the
    synthetic data never had."""

    def __init__(self, profile: Profile, settings: DriftSettings | None = None) -> None:
        self.profile = profile
        self.settings = settings or DriftSettings()
        self.sketcher = profile.sketcher()
        channels, groups = profile.channels, profile.groups
        self._references = {c.name: np.array([profile.reference_probabilities(c, g) for g in range(len(groups))])
                            for c in channels}
        self._novel = {c.name: c.bins.novel for c in channels}
        # Per channel, the reference's rows behind each group's distribution and missing rate: its
        # own sampling noise is part of every bound (see `calibration`).
        self._reference_sizes = {c.name: (counts[:, :-1].sum(axis=1), counts.sum(axis=1))
                                 for c in channels for counts in [profile.reference.counts[c.name]]}
        self._features: dict[str, list[Channel]] = {}
        for channel in channels:
            self._features.setdefault(channel.feature, []).append(channel)
        tests = sum(len(c.judged) for c in channels) * len(groups)
        self.bounds = NullBounds(tail=self.settings.false_alarm_rate / tests)
        # Detector blocks are judged at every block, not once a window: at most the false-alarm
        # rate over all channels per `BLOCK_LOOKS` blocks (100,000 events at the default block).
        self.block_bounds = NullBounds(tail=self.settings.false_alarm_rate / (len(channels) * BLOCK_LOOKS))
        self.detectors = self.seeded_detectors()

    def seeded_detectors(self) -> DriftDetectors:
        """New online detectors, fed the profile's reservoir sample (they start from its world), or,
        for a baseline without rows, blocks drawn from its bins."""
        rows = len(next(iter(self.profile.sample.values()), ()))
        if rows:
            encoded = self.sketcher.encode(self.profile.sample)
            warmup = self.blocks({name: e.index for name, e in encoded.items() if e.owner is None})
        else:
            rng, block = np.random.default_rng(0), self.settings.detector.block
            warmup = {c.name: rng.multinomial(block, self._references[c.name][0], size=WARMUP_BLOCKS)
                      for c in self.profile.channels if c.kind in ("numeric", "categorical")}
        return DriftDetectors(
            self.profile.channels, {c.name: self._references[c.name][0] for c in self.profile.channels},
            self.settings.detector, self.judge_counts,
            lambda channel, statistic: self.settings.threshold(channel.feature, statistic).warning, warmup)

    def _size(self, channel: str) -> int:
        return self.profile.reference.counts[channel].shape[1]

    def observe(self, columns: Columns, offsets: np.ndarray) -> tuple[Sketch, list[Detection]]:
        """Sketches a batch and runs the detectors over its organic rows; `offsets` are the rows'
        stream positions."""
        sketch = self.sketcher.empty()
        organic = self.sketcher.split(sketch, columns)
        if organic is not None:
            columns, offsets = take(columns, organic), offsets[organic]
        encoded = self.sketcher.encode(columns)
        self.sketcher.update(sketch, columns, encoded)
        return sketch, self.detect(encoded, offsets)

    def detect(self, encoded: dict[str, Encoded], offsets: np.ndarray) -> list[Detection]:
        blocks = self.blocks({name: e.index for name, e in encoded.items() if e.owner is None})
        ends = block_ends(offsets, self.settings.detector.block)
        return self.detectors.update(blocks, dict.fromkeys(blocks, ends))

    def blocks(self, indices: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per channel, the bin counts of consecutive blocks of a batch's rows (their bin indices)."""
        block = self.settings.detector.block
        return {name: block_counts(index, self._size(name), block) for name, index in indices.items()}

    def evaluate(self, sketch: Sketch) -> list[FeatureResult]:
        """Every feature in every group that saw traffic, worst first."""
        judged = {c.name: self._judge(c, sketch) for c in self.profile.channels}
        events_by_feature = {f: sketch.counts[channels[0].name].sum(axis=1).tolist()
                             for f, channels in self._features.items()}
        results = []
        for feature, channels in self._features.items():
            events = events_by_feature[feature]
            kind = channels[0].kind if len(channels) == 1 else "text"
            for g, group in enumerate(self.profile.groups):
                if g and not events[g]:
                    continue
                stats: dict[str, float | None] = {}
                severity, hold, breaches = Severity.OK, 0, list[str]()
                for channel in channels:
                    values, severities, holds, breached = judged[channel.name]
                    hold = max(hold, holds[g])
                    prefix = f"{channel.descriptor}_" if channel.descriptor else ""
                    stats.update({prefix + k: (None if v[g] != v[g] else v[g]) for k, v in values.items()})  # NaN
                    if severities[g] > severity:
                        severity, breaches = Severity(severities[g]), []
                    if severities[g] == severity > Severity.OK:
                        breaches += [prefix + b for b in breached[g]]
                results.append(FeatureResult(feature, group, kind, int(events[g]), stats, severity, tuple(breaches),
                                             Severity(hold)))
        return sorted(results, key=lambda r: (-r.severity, r.feature, r.group.name))

    def _judge(self, channel: Channel,
               sketch: Sketch) -> tuple[dict[str, list[float]], list[int], list[int], list[list[str]]]:
        """A channel's statistics in every group, each group's severity, its severity at the lowered
        thresholds, and the statistics behind the severity."""
        counts, reference = sketch.counts[channel.name], self._references[channel.name]
        stats = describe(channel, reference, counts, self.profile.reference, sketch)
        totals, present = counts.sum(axis=1), counts[:, :-1].sum(axis=1)
        severity = np.zeros(len(counts), dtype=np.intp)
        hold = np.zeros(len(counts), dtype=np.intp)
        breaches: list[list[str]] = [[] for _ in counts]
        ratio = self.settings.exit_ratio
        for statistic in channel.judged:
            values = statistics.JUDGED[statistic].function(reference, counts, self._novel[channel.name])
            sizes = totals if statistic == "missing_rate_change" else present
            stats[statistic] = np.where(sizes > 0, values, np.nan)
            threshold = self.settings.threshold(channel.feature, statistic)
            lowered = Threshold(threshold.warning * ratio, threshold.critical * ratio)
            lowest = min(threshold.warning, lowered.warning)
            for g in np.flatnonzero(sizes >= self.settings.min_events).tolist():
                value = _effect(statistic, float(values[g]))
                if value < lowest:
                    continue  # OK whatever the bound: spare its simulation (most statistics of a window)
                bound = self._bound(self.bounds, channel, g, statistic, int(sizes[g]))
                verdict = int(judge(value, threshold, bound))
                hold[g] = max(hold[g], int(judge(value, lowered, bound)))
                if verdict > severity[g]:
                    severity[g], breaches[g] = verdict, []
                if verdict and verdict == severity[g]:
                    breaches[g].append(statistic)
        return {k: v.tolist() for k, v in stats.items()}, severity.tolist(), hold.tolist(), breaches

    def judge_counts(self, channel: Channel, counts: np.ndarray, judged: tuple[str, ...]) -> Severity:
        """The severity that all-traffic counts of one channel (a few detector blocks) would get
        as a window, on these statistics: large and significant."""
        reference, novel = self._references[channel.name][0], self._novel[channel.name]
        worst = Severity.OK
        for statistic in judged:
            n = int(counts.sum() if statistic == "missing_rate_change" else counts[:-1].sum())
            if n < self.settings.min_events:
                continue
            value = _effect(statistic, float(statistics.JUDGED[statistic].function(reference, counts, novel)))
            threshold = self.settings.threshold(channel.feature, statistic)
            if value >= threshold.warning:  # below, OK whatever the bound
                worst = max(worst, judge(value, threshold, self._bound(self.block_bounds, channel, 0, statistic, n)))
        return worst

    def _bound(self, bounds: NullBounds, channel: Channel, group: int, statistic: str, n: int) -> float:
        """The bound that chance keeps one judged statistic of one group of `n` events under,
        reference sampling noise included."""
        reference_rows = int(self._reference_sizes[channel.name][int(statistic == "missing_rate_change")][group])
        return bounds.bound((channel.name, group), self._references[channel.name][group], self._novel[channel.name],
                            statistic, n, reference_rows)

    def sources(self, sketch: Sketch) -> list[SourceResult]:
        """Per provenance, most events first: events, and accuracy with its interval beside this
        analyzer's reference accuracy (the synthetic evaluation, on the synthetic profile's analyzer)."""
        performance = next((c for c in self.profile.channels if c.kind == "performance"), None)
        reference = None
        if performance is not None:
            right, wrong = self.profile.reference.counts[performance.name][0, :2].tolist()
            reference = right / (right + wrong) if right + wrong else None
        results = []
        for provenance, counts in sketch.sources.items():
            events, right, wrong = counts.tolist()
            low, high = statistics.wilson_interval(np.array(right), np.array(right + wrong))
            labelled = bool(right + wrong)
            results.append(SourceResult(provenance, events, right + wrong,
                                        right / (right + wrong) if labelled else None,
                                        float(low) if labelled else None, float(high) if labelled else None,
                                        reference))
        return sorted(results, key=lambda r: (-r.events, -r.labelled, r.provenance))

    def slices(self, sketch: Sketch) -> list[Slice]:
        """The slices (one condition or two) where the window departs most from the reference (see `slices`)."""
        reference = self.profile.reference
        return slices.find(self.sketcher.axes, reference.slices, sketch.slices, self.settings.false_alarm_rate,
                           reference.slice_outcomes, sketch.slice_outcomes)

    def coverage_gaps(self, sketch: Sketch) -> list[CoverageGap]:
        """Segment values and categories the synthetic data never had, largest first."""
        gaps = []
        for name, values in sketch.gaps.items():
            outcomes = sketch.gap_outcomes.get(name, {})
            for value, count in values.items():
                right, wrong = outcomes[value].tolist() if value in outcomes else (0, 0)
                low, high = (float(v) for v in statistics.wilson_interval(np.array(right), np.array(right + wrong)))
                gaps.append(CoverageGap(name, value, count / sketch.events if sketch.events else 0.0, count,
                                        right + wrong, right / (right + wrong) if right + wrong else None,
                                        *((low, high) if right + wrong else (None, None))))
        return sorted(gaps, key=lambda gap: (-gap.events, gap.field, gap.value))


def describe(channel: Channel, reference: np.ndarray, counts: np.ndarray, reference_sketch: Sketch,
             live_sketch: Sketch) -> dict[str, np.ndarray]:
    """The reported (not judged) statistics of one channel, one value per group (NaN: no data)."""
    present = counts[:, :-1].sum(axis=1) > 0
    p, q = statistics.distribution(reference), statistics.distribution(counts)
    kind = channel.kind
    if kind == "vocabulary":
        stats = {"oov_share": statistics.share(counts, channel.bins.novel)}
    elif kind == "performance":
        # Live accuracy with its Wilson interval (a few labels say little), beside the reference's
        # (on the synthetic profile: the synthetic evaluation, and the reality gap of performance).
        low, high = statistics.wilson_interval(counts[:, 0], counts[:, 0] + counts[:, 1])
        # The accuracy gap (reference accuracy minus live) with Newcombe's interval: against the
        # synthetic profile, the eval-flattery index of organic traffic.
        labelled = counts[:, 0] + counts[:, 1]
        evaluated = reference_sketch.counts[channel.name]
        _, gap_low, gap_high = statistics.difference_interval(evaluated[:, 0], evaluated[:, 0] + evaluated[:, 1],
                                                              counts[:, 0], labelled)
        stats = {"accuracy": 1.0 - statistics.share(counts, channel.bins.novel), "accuracy_low": low,
                 "accuracy_high": high, "reference_accuracy": 1.0 - statistics.share(reference, channel.bins.novel),
                 "labelled": labelled.astype(np.float64), "accuracy_gap_low": gap_low, "accuracy_gap_high": gap_high}
    else:
        stats = {"psi": statistics.psi(p, q), "js": statistics.js_distance(p, q)}
    if kind == "categorical":
        stats["chi2"] = statistics.chi_square(p, counts)
    bins = channel.bins
    if isinstance(bins, NumericBins):
        stats["ks"] = statistics.ks(p, q)
        reference_mean, reference_sd = reference_sketch.moments(channel.name)
        live_mean, _ = live_sketch.moments(channel.name)
        spread = np.where(reference_sd > 0, reference_sd, 1.0)
        stats["wasserstein"] = statistics.wasserstein(
            _atoms(reference_sketch, channel.name), p, _atoms(live_sketch, channel.name), q) / spread
        stats["tail_share"] = statistics.share(counts, bins.tail)
        stats["mean"] = live_mean
        stats["mean_shift_sd"] = (live_mean - reference_mean) / spread
    return {name: np.where(present, values, np.nan) for name, values in stats.items()}


def _atoms(sketch: Sketch, channel: str) -> np.ndarray:
    """Each bin as an atom at the mean of its values (0 for an empty bin, which has no weight)."""
    counts = sketch.counts[channel][:, :-1]
    sums = sketch.sums[channel][:, :-1]
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)


def _effect(statistic: str, value: float) -> float:
    """A judged statistic's size: a missing-rate change counts either way."""
    return abs(value) if statistic == "missing_rate_change" else value
