"""Alert events (contract: schemas/alert.schema.json): what the worker sends to the alerts topic
when a feature in a segment changes alert state, or a slice starts or stops departing."""

from __future__ import annotations

import time
import uuid
from typing import Any

from monitor.core.alerts import AlertChange, SliceChange
from monitor.core.slices import MIN_ACCURACY_GAP, MIN_SHARE
from monitor.core.statistics import judged_name
from monitor.core.types import DriftSettings


def alert_event(change: AlertChange, context: dict[str, Any], settings: DriftSettings) -> dict[str, Any]:
    """The event for one change; `context` (model, profile, reference, window) goes into it as it is."""
    result = change.result
    thresholds = {}
    for breach in result.breaches:
        threshold = settings.threshold(result.feature, judged_name(breach) or breach)
        thresholds[breach] = {"warning": threshold.warning, "critical": threshold.critical}
    return {
        "alert_id": str(uuid.uuid4()),
        "time": time.time(),
        **context,
        "feature": result.feature,
        "segment": result.group.label,
        "state": change.name,
        "previous": str(change.previous),
        "events": result.events,
        "stats": result.stats,
        "breaches": list(result.breaches),
        "thresholds": thresholds,
    }


SLICE_FEATURE = "(slice)"  # the `feature` of a slice's alert event; its `segment` holds the slice's conditions


def slice_alert_event(change: SliceChange, context: dict[str, Any]) -> dict[str, Any]:
    """The event for a slice that began or stopped departing (share or accuracy); a warning at most."""
    found = change.found
    stats: dict[str, Any] = {}
    breaches = []
    if found is not None:
        stats = {k: v for k, v in found.to_json().items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        breaches = [name for name, hit in (("share", found.departs), ("accuracy", found.weak)) if hit]
    return {
        "alert_id": str(uuid.uuid4()),
        "time": time.time(),
        **context,
        "feature": SLICE_FEATURE,
        "segment": dict(change.conditions),
        "state": change.state,
        "previous": "warning" if change.state == "resolved" else "ok",
        "events": found.events if found is not None else 0,
        "stats": stats,
        "breaches": breaches,
        "thresholds": {"share": {"warning": MIN_SHARE}, "accuracy": {"warning": MIN_ACCURACY_GAP}},
    }
