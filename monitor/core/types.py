"""Value types shared by the core, the stream, the exports and the commands.

Settings, results, coverage gaps and detections: frozen dataclasses, each with its own `to_json`.
This module imports no SciPy, River or Kafka code, so configuration and reports load fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from monitor.core.severity import Severity, Threshold
from monitor.core.statistics import DEFAULT_THRESHOLDS

DetectorKind = Literal["adwin", "page_hinkley", "kswin"]


@dataclass(frozen=True, slots=True)
class Group:
    """A slice of traffic: everything (`field` None) or one value of one segment field."""

    field: str | None = None
    value: str | None = None

    @property
    def label(self) -> dict[str, str] | None:
        return None if self.field is None else {self.field: self.value}  # type: ignore[dict-item]

    @property
    def name(self) -> str:
        return "all" if self.field is None else f"{self.field}={self.value}"


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    kind: DetectorKind = "adwin"
    block: int = 100  # events per detector update
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DriftSettings:
    """How drift is judged; see the README's "Severities" section."""

    thresholds: dict[str, Threshold] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    feature_thresholds: dict[str, dict[str, Threshold]] = field(default_factory=dict)
    false_alarm_rate: float = 0.01  # per window, over all features x segments x statistics
    min_events: int = 100  # a group with fewer events in a window is reported but not judged
    exit_ratio: float = 0.8  # an alert holds until its statistics fall below this share of the thresholds
    detector: DetectorSettings = field(default_factory=DetectorSettings)

    def threshold(self, feature: str, statistic: str) -> Threshold:
        return self.feature_thresholds.get(feature, {}).get(statistic) or self.thresholds[statistic]


@dataclass(frozen=True, slots=True)
class AlertSettings:
    enter_windows: int = 2


@dataclass(frozen=True, slots=True)
class FeatureResult:
    feature: str
    group: Group
    kind: str
    events: int
    stats: dict[str, float | None]
    severity: Severity
    breaches: tuple[str, ...]  # the statistics that set the severity
    hold: Severity = Severity.OK  # the severity at thresholds lowered by `exit_ratio`

    def to_json(self) -> dict[str, Any]:
        return {"feature": self.feature, "segment": self.group.label, "kind": self.kind, "events": self.events,
                "stats": self.stats, "severity": str(self.severity), "breaches": list(self.breaches)}


@dataclass(frozen=True, slots=True)
class SourceResult:
    """One provenance in a window: its events, and the accuracy of its labelled predictions with a
    95% Wilson interval beside the synthetic evaluation's, the reality gap of performance."""

    provenance: str
    events: int
    labelled: int
    accuracy: float | None
    accuracy_low: float | None
    accuracy_high: float | None
    synthetic_accuracy: float | None

    @property
    def below_synthetic(self) -> bool:
        """Whether even the interval's top is below the synthetic evaluation: a few labels never say so."""
        return None not in (self.accuracy_high, self.synthetic_accuracy) \
            and self.accuracy_high < self.synthetic_accuracy  # type: ignore[operator]

    def to_json(self) -> dict[str, Any]:
        gap = None if None in (self.accuracy, self.synthetic_accuracy) \
            else self.synthetic_accuracy - self.accuracy  # type: ignore[operator]
        return {"provenance": self.provenance, "events": self.events, "labelled": self.labelled,
                "accuracy": self.accuracy, "accuracy_low": self.accuracy_low, "accuracy_high": self.accuracy_high,
                "synthetic_accuracy": self.synthetic_accuracy, "accuracy_gap": gap,
                "below_synthetic": self.below_synthetic}


@dataclass(frozen=True, slots=True)
class CoverageGap:
    """A value the synthetic data never had; for a segment value (a language nobody generated),
    the accuracy of its labelled predictions with a 95% Wilson interval."""

    field: str
    value: str
    live_share: float
    events: int
    labelled: int = 0
    accuracy: float | None = None
    accuracy_low: float | None = None
    accuracy_high: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "value": self.value, "live_share": self.live_share, "events": self.events,
                "labelled": self.labelled, "accuracy": self.accuracy, "accuracy_low": self.accuracy_low,
                "accuracy_high": self.accuracy_high}


@dataclass(frozen=True, slots=True)
class Detection:
    feature: str
    channel: str
    signal: str
    detector: str
    offset: int

    def to_json(self) -> dict[str, Any]:
        return {"feature": self.feature, "channel": self.channel, "signal": self.signal, "detector": self.detector,
                "offset": self.offset}
