"""Prometheus metrics: declared once, here, and updated from the core's results.

Label sets stay bounded: segments are the profile's (at most `top_k` values per field keep their
own label, the rest share `<field>=other`), coverage-gap values beyond the top k are `other`, and
statistics and detectors are closed sets.
"""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from monitor.core.channels import CategoryBins, Channel, NumericBins
from monitor.core.columns import ORGANIC
from monitor.core.sketch import Sketch
from monitor.core.slices import Slice
from monitor.core.statistics import distribution, judged_name
from monitor.core.types import CoverageGap, Detection, DriftSettings, FeatureResult, Group, SourceResult

BIN_SERIES = 50  # categories with bin-share series of their own; the rest add to `(other)`
ACCURACY_NAMES = ("accuracy", "accuracy_low", "accuracy_high", "synthetic_accuracy")
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300)


class BinShares:
    """`synthdrift_feature_bin_share`, made at each scrape from the last window's shares. As gauge
    series, a window would set thousands of them, and making one costs ~15 us (60 ms for the first
    window of a 20-feature profile), for the samples a scrape then builds anyway."""

    NAME = "synthdrift_feature_bin_share"
    HELP = "Share of a feature's values per bin, in the synthetic profile and the last window."
    LABELS = ("model", "feature", "segment", "bin", "source")

    def __init__(self, model: str) -> None:
        self.model = model
        # By (channel, segment): the bins' labels, their synthetic shares and their last window's.
        self.shares: dict[tuple[str, str], tuple[list[str], list[float], list[float]]] = {}

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily(self.NAME, self.HELP, labels=self.LABELS)]

    def collect(self) -> list[Metric]:
        family = GaugeMetricFamily(self.NAME, self.HELP, labels=self.LABELS)
        for (channel, segment), (bins, synthetic, live) in self.shares.items():
            for label, before, now in zip(bins, synthetic, live, strict=True):
                family.add_metric((self.model, channel, segment, label, "synthetic"), before)
                family.add_metric((self.model, channel, segment, label, "live"), now)
        return [family]

    def clear(self) -> None:
        self.shares.clear()


class Metrics:
    def __init__(self, registry: CollectorRegistry, model: str, top_k: int, reference: str = "synthetic") -> None:
        self.registry = registry
        self.model = model
        self.top_k = top_k
        self.reference = reference  # what drift is judged against: `synthetic` (the profile) or `organic`
        self.events = Counter("synthdrift_events_total", "Events read, by stream and status (valid, invalid, late).",
                              ["stream", "status"], registry=registry)
        self.dead_letters = Counter("synthdrift_dead_letters_total", "Events sent to the dead-letter topic.",
                                    ["stream", "reason"], registry=registry)
        self.drift_score = Gauge("synthdrift_feature_drift_score", "A drift statistic in the last closed window.",
                                 ["model", "feature", "segment", "reference", "statistic"], registry=registry)
        self.drift_threshold = Gauge("synthdrift_feature_drift_threshold",
                                     "The effect-size threshold a statistic is judged against.",
                                     ["model", "feature", "segment", "reference", "statistic", "severity"],
                                     registry=registry)
        self.drift_severity = Gauge("synthdrift_feature_drift_severity",
                                    "Severity in the last closed window: 0 ok, 1 warning, 2 critical.",
                                    ["model", "feature", "segment", "reference"], registry=registry)
        self.detections = Counter("synthdrift_drift_detections_total", "Online detector firings.",
                                  ["model", "feature", "segment", "reference", "detector"], registry=registry)
        self.gap_psi = Gauge("synthdrift_reality_gap_psi",
                             "PSI of the last closed window against the synthetic profile (with an organic baseline).",
                             ["model", "feature", "segment"], registry=registry)
        self.standing_gap_psi = Gauge("synthdrift_reality_gap_standing_psi",
                                      "PSI of the organic baseline against the synthetic profile: the gap that was "
                                      "standing when the baseline was taken.", ["model", "feature", "segment"],
                                      registry=registry)
        self.coverage_gap = Gauge("synthdrift_coverage_gap_share",
                                  "Share of the last window's events with a value the synthetic data never had.",
                                  ["model", "field", "value"], registry=registry)
        self.window_events = Gauge("synthdrift_window_events", "Events in the last closed window.", ["model"],
                                   registry=registry)
        self.windows = Counter("synthdrift_windows_total", "Windows closed and judged.", ["model"],
                               registry=registry)
        self.last_window = Gauge("synthdrift_last_window_close_timestamp_seconds",
                                 "When the last window closed (Unix time).", ["model"], registry=registry)
        self.window_delay = Histogram("synthdrift_window_close_delay_seconds",
                                      "From a window's end (record time) to its verdict.", ["model"],
                                      buckets=LATENCY_BUCKETS, registry=registry)
        self.batch_seconds = Histogram("synthdrift_batch_processing_seconds",
                                       "Time to validate and sketch one batch read from Kafka.", ["stream"],
                                       buckets=LATENCY_BUCKETS, registry=registry)
        self.lag = Gauge("synthdrift_consumer_lag_messages", "Messages not yet read, from the fetch highwater.",
                         ["stream"], registry=registry)
        self.joins = Counter("synthdrift_joins_total", "Join outcomes: matched, or expired unmatched.",
                             ["kind", "outcome"], registry=registry)
        self.alerts = Counter("synthdrift_alerts_total", "Alert events sent, by state.", ["model", "state"],
                              registry=registry)
        self.bin_share = BinShares(model)
        registry.register(self.bin_share)
        self.provenance_events = Gauge("synthdrift_provenance_events",
                                       "Events in the last closed window by provenance; only organic ones judge drift.",
                                       ["model", "provenance"], registry=registry)
        self.accuracy = Gauge("synthdrift_accuracy_ratio",
                              "The last window's accuracy on labelled predictions, its 95% Wilson interval and the "
                              "synthetic evaluation's, by provenance (all segments) and segment (organic traffic).",
                              ["model", "provenance", "segment", "statistic"], registry=registry)
        self.labelled = Gauge("synthdrift_labelled_predictions",
                              "Labelled predictions in the last closed window, by provenance and segment.",
                              ["model", "provenance", "segment"], registry=registry)
        self.flattery = Gauge("synthdrift_eval_flattery",
                              "The eval-flattery index of the last window: the synthetic evaluation's accuracy minus "
                              "organic accuracy, by segment; `statistic`: index, low, high (Newcombe's 95% interval).",
                              ["model", "segment", "statistic"], registry=registry)
        self.slice_share = Gauge("synthdrift_slice_share",
                                 "The last window's top slices (at most 10) where live traffic departs from the "
                                 "synthetic data: share of events, live and expected (synthetic, or what the "
                                 "marginals of a two-condition slice explain).", ["model", "slice", "source"],
                                 registry=registry)
        self.slice_accuracy = Gauge("synthdrift_slice_accuracy",
                                    "Accuracy in the last window's top slices where labels exist: `source` live or "
                                    "reference (the synthetic evaluation in that slice, or overall); `weak` is 1 "
                                    "where accuracy falls beyond its bound.", ["model", "slice", "source"],
                                    registry=registry)
        self._gap_values: set[tuple[str, str]] = set()
        self._series: dict[tuple[Gauge, tuple[str, ...]], Gauge] = {}  # see `_set`
        self._window_gauges = (self.drift_score, self.drift_threshold, self.drift_severity, self.coverage_gap,
                               self.bin_share, self.gap_psi, self.provenance_events, self.accuracy, self.labelled,
                               self.flattery, self.slice_share, self.slice_accuracy)

    def declare_detectors(self, features: set[str], detector: str) -> None:
        """Starts every detection counter at 0, so that its first firing shows as an increase."""
        for feature in sorted(features):
            self.detections.labels(self.model, feature, "all", self.reference, detector)

    def forget_windows(self) -> None:
        """Drops the per-window gauges: after the merger moved away, this worker's are stale."""
        for gauge in self._window_gauges:
            gauge.clear()
        self._gap_values.clear()
        self._series.clear()

    def record_bins(self, channels: tuple[Channel, ...], groups: tuple[Group, ...], reference: Sketch,
                    live: Sketch, ranks: dict[str, int]) -> None:
        """Synthetic and live shares per bin, side by side, for numeric and categorical channels."""
        for channel in channels:
            if not isinstance(channel.bins, (NumericBins, CategoryBins)):
                continue
            labels = channel.bins.labels
            synthetic = _folded(channel, distribution(reference.counts[channel.name]))
            current = _folded(channel, distribution(live.counts[channel.name]))
            labels = labels[:BIN_SERIES] + labels[-2:] if synthetic.shape[1] < len(labels) else labels
            for g, group in enumerate(groups):
                if g and ranks.get(group.name, 0) >= self.top_k:
                    continue  # bins of `other` segments would mix several segments' shapes
                segment = "all" if group.field is None else group.name
                self.bin_share.shares[(channel.name, segment)] = (labels, synthetic[g].tolist(), current[g].tolist())

    def _set(self, gauge: Gauge, labels: tuple[str, ...], value: float) -> None:
        """`gauge.labels(*labels).set(value)`, the series kept: a window sets thousands of them, and
        `labels` costs ten times a lookup. For gauges only `forget_windows` clears (which forgets them)."""
        series = self._series.get((gauge, labels))
        if series is None:
            series = self._series[(gauge, labels)] = gauge.labels(*labels)
        series.set(value)

    def segment_label(self, result: FeatureResult, ranks: dict[str, int]) -> str:
        group = result.group
        if group.field is None:
            return "all"
        return group.name if ranks.get(group.name, 0) < self.top_k else f"{group.field}=other"

    def record_window(self, results: list[FeatureResult], gaps: list[CoverageGap], events: int,
                      settings: DriftSettings, ranks: dict[str, int]) -> None:
        """Sets the gauges from one closed window's results (worst first, so `other` keeps the worst)."""
        seen: set[tuple[str, str]] = set()
        for result in results:
            segment = self.segment_label(result, ranks)
            if (result.feature, segment) in seen:
                continue
            seen.add((result.feature, segment))
            self._set(self.drift_severity, (self.model, result.feature, segment, self.reference), int(result.severity))
            for statistic, value in result.stats.items():
                if value is None:
                    continue
                self._set(self.drift_score, (self.model, result.feature, segment, self.reference, statistic), value)
                judged = judged_name(statistic)
                if judged:
                    threshold = settings.threshold(result.feature, judged)
                    for severity in ("warning", "critical"):
                        self._set(self.drift_threshold, (self.model, result.feature, segment, self.reference,
                                                         statistic, severity), getattr(threshold, severity))
        shares: dict[tuple[str, str], float] = {}
        for rank, gap in enumerate(gaps):
            key = (gap.field, gap.value if rank < self.top_k else "other")
            shares[key] = shares.get(key, 0.0) + gap.live_share
        for key in self._gap_values - set(shares):  # a value out of the top k, or a gap closed: no series
            self.coverage_gap.remove(self.model, *key)
        for key, share in shares.items():
            self.coverage_gap.labels(self.model, *key).set(share)
        self._gap_values = set(shares)
        self.window_events.labels(self.model).set(events)
        self.windows.labels(self.model).inc()

    def record_detections(self, detections: list[Detection]) -> None:
        for detection in detections:
            self.detections.labels(self.model, detection.feature, "all", self.reference, detection.detector).inc()

    def record_gap(self, results: list[FeatureResult], ranks: dict[str, int], standing: bool = False) -> None:
        """The reality gap's PSI per feature and segment: of the last window, or (`standing`) of the
        organic baseline, against the synthetic profile."""
        gauge = self.standing_gap_psi if standing else self.gap_psi
        seen: set[tuple[str, str]] = set()
        for result in results:  # worst first: `other` keeps the worst
            segment, psi = self.segment_label(result, ranks), result.stats.get("psi")
            if psi is None or (result.feature, segment) in seen:
                continue
            seen.add((result.feature, segment))
            gauge.labels(self.model, result.feature, segment).set(psi)

    def record_accuracy(self, sources: list[SourceResult], results: list[FeatureResult], ranks: dict[str, int]) -> None:
        """The reality gap of performance: accuracy by provenance, and on organic traffic by segment
        (`results` judged against the synthetic profile), each beside the synthetic evaluation's."""
        for gauge in (self.provenance_events, self.accuracy, self.labelled, self.flattery):
            gauge.clear()  # a provenance or segment without labels in this window: no stale series
        rows: list[tuple[str, str, int, tuple[float | None, ...]]] = [
            (s.provenance, "all", s.labelled, (s.accuracy, s.accuracy_low, s.accuracy_high, s.synthetic_accuracy))
            for s in sources]
        for source in sources:
            self.provenance_events.labels(self.model, source.provenance).set(source.events)
        seen = set()
        for result in results:  # worst first: `other` keeps the worst
            segment, stats = self.segment_label(result, ranks), result.stats
            if result.kind != "performance" or segment in seen or stats.get("accuracy") is None:
                continue
            seen.add(segment)
            for statistic, name in (("index", "accuracy_gap"), ("low", "accuracy_gap_low"),
                                    ("high", "accuracy_gap_high")):
                self.flattery.labels(self.model, segment, statistic).set(stats[name])  # type: ignore[arg-type]
            if segment != "all":  # all organic traffic is the `organic` row of `sources`
                names = ("accuracy", "accuracy_low", "accuracy_high", "reference_accuracy")
                rows.append((ORGANIC, segment, round(stats["labelled"] or 0), tuple(stats[name] for name in names)))
        for provenance, segment, labelled, values in rows:
            self.labelled.labels(self.model, provenance, segment).set(labelled)
            for statistic, value in zip(ACCURACY_NAMES, values, strict=True):
                if value is not None:
                    self.accuracy.labels(self.model, provenance, segment, statistic).set(value)

    def record_slices(self, found: list[Slice]) -> None:
        self.slice_share.clear()  # the top slices change from window to window: no stale series
        self.slice_accuracy.clear()
        for departing in found:
            self.slice_share.labels(self.model, departing.name, "live").set(departing.live_share)
            self.slice_share.labels(self.model, departing.name, "expected").set(departing.expected_share)
            if departing.accuracy is not None and departing.reference_accuracy is not None:
                for source, value in (("live", departing.accuracy), ("reference", departing.reference_accuracy),
                                      ("weak", float(departing.weak))):
                    self.slice_accuracy.labels(self.model, departing.name, source).set(value)


def _folded(channel: Channel, shares: np.ndarray) -> np.ndarray:
    """A categorical channel's shares with the categories past the first `BIN_SERIES` added to
    `(other)`: up to 200 categories have bins, but a series each would multiply the cardinality."""
    if not isinstance(channel.bins, CategoryBins) or len(channel.bins.categories) <= BIN_SERIES:
        return shares
    rest = len(channel.bins.categories)
    folded = shares[:, :BIN_SERIES + 2].copy()  # the kept categories, then `(other)` and `(unseen)`
    folded[:, BIN_SERIES] = shares[:, BIN_SERIES:rest + 1].sum(axis=1)
    folded[:, BIN_SERIES + 1] = shares[:, rest + 1]
    return folded
