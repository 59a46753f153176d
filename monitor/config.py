"""Configuration: one YAML file (contract: schemas/config.schema.json), checked at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from monitor import schemas
from monitor.analyzer import DriftSettings
from monitor.detectors import DetectorSettings
from monitor.severity import DEFAULT_THRESHOLDS, Threshold


class ConfigError(ValueError):
    """Configuration that cannot be used; the message says what to fix, in one line."""


def load_yaml(path: str | Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {str(exc).splitlines()[0]}") from None
    if problem := schemas.problem("config", data):
        raise ConfigError(f"{path}: {problem}")
    return data


def drift_settings(data: dict[str, Any]) -> DriftSettings:
    """DriftSettings from the `drift:` section of a validated configuration."""
    drift = data.get("drift", {})
    thresholds = {**DEFAULT_THRESHOLDS, **_thresholds(drift.get("thresholds", {}))}
    features = {name: _thresholds(t) for name, t in drift.get("features", {}).items()}
    defaults = DriftSettings()
    detector = drift.get("detector", {})
    for statistic, threshold in [*thresholds.items(), *(i for f in features.values() for i in f.items())]:
        if threshold.warning > threshold.critical:
            raise ConfigError(f"drift thresholds: {statistic} warning {threshold.warning} is above critical "
                              f"{threshold.critical}")
    detector_settings = DetectorSettings(kind=detector.get("kind", defaults.detector.kind),
                                         block=detector.get("block", defaults.detector.block),
                                         parameters=detector.get("parameters", {}))
    try:
        detector_settings.create()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"drift detector {detector_settings.kind}: {exc}") from None
    return DriftSettings(
        thresholds=thresholds,
        feature_thresholds=features,
        false_alarm_rate=drift.get("false_alarm_rate", defaults.false_alarm_rate),
        min_events=drift.get("min_events", defaults.min_events),
        detector=detector_settings,
    )


def _thresholds(data: dict[str, dict[str, float]]) -> dict[str, Threshold]:
    return {name: Threshold(t["warning"], t["critical"]) for name, t in data.items()}
