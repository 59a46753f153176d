"""Alert events (contract: schemas/alert.schema.json): what the worker sends to the alerts topic
when a feature in a segment changes alert state."""

from __future__ import annotations

import time
import uuid
from typing import Any

from monitor.core.alerts import AlertChange
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
