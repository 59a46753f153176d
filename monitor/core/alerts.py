"""Alert states: a change of state of a feature in a segment, with hysteresis.

A feature enters `warning` or `critical` after that severity held for `enter_windows` consecutive
windows, and leaves it only when its statistics fall below the lowered thresholds of the drift
settings' `exit_ratio` (the result's `hold` severity), so a value hovering at a threshold does not
flap. Nothing changes while a state holds. `monitor.export.alerts` turns a change into an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor.core.severity import Severity
from monitor.core.slices import Slice
from monitor.core.types import AlertSettings, FeatureResult


@dataclass(frozen=True, slots=True)
class AlertChange:
    """A feature in a segment moved from one alert state to another (0 ok or resolved, 1, 2)."""

    result: FeatureResult
    previous: Severity
    state: Severity

    @property
    def name(self) -> str:
        """The new state as an alert event names it: `warning`, `critical` or `resolved`."""
        return "resolved" if self.state == Severity.OK else str(self.state)


@dataclass(slots=True)
class _Track:
    state: int = 0
    streaks: list[int] = field(default_factory=lambda: [0, 0, 0])  # windows in a row at >= each severity


class AlertStates:
    """The alert state of every (feature, segment), advanced window by window.

    >>> from monitor.core.types import Group
    >>> states = AlertStates(AlertSettings(enter_windows=2))
    >>> hot = FeatureResult("amount", Group(), "numeric", 500, {"psi": 0.4}, Severity.CRITICAL, ("psi",),
    ...                     hold=Severity.CRITICAL)
    >>> [len(states.advance([hot])) for _ in range(3)]
    [0, 1, 0]
    """

    def __init__(self, settings: AlertSettings, tracks: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self._tracks = {k: _Track(v["state"], v["streaks"]) for k, v in (tracks or {}).items()}

    def advance(self, results: list[FeatureResult]) -> list[AlertChange]:
        """The state changes this window's results make."""
        changes = []
        for result in results:
            key = f"{result.feature}|{result.group.name}"
            track = self._tracks.setdefault(key, _Track())
            severity = int(result.severity)
            track.streaks = [track.streaks[level] + 1 if severity >= level else 0 for level in range(3)]
            entered = max((level for level in range(3) if track.streaks[level] >= self.settings.enter_windows),
                          default=0)
            # Up after enough windows in a row; down only below the lowered thresholds.
            new = max(entered, min(track.state, int(result.hold)))
            if new != track.state:
                changes.append(AlertChange(result, Severity(track.state), Severity(new)))
                track.state = new
        return changes

    def state(self, feature: str, segment: str) -> Severity:
        return Severity(self._tracks.get(f"{feature}|{segment}", _Track()).state)

    def to_json(self) -> dict[str, Any]:
        return {k: {"state": t.state, "streaks": t.streaks} for k, t in self._tracks.items()}


@dataclass(frozen=True, slots=True)
class SliceChange:
    """A slice began to alert (`warning`: found in `enter_windows` windows in a row, with `found`
    from the last) or stopped (`resolved`: a window without it, `found` None)."""

    conditions: tuple[tuple[str, str], ...]
    state: str
    found: Slice | None


class SliceStates:
    """Which of the slices found (departing or weak) are alerting, window by window. A slice never
    pages: it is a ticket-level finding, and its alert event says where to look.

    >>> from monitor.core.slices import Slice
    >>> states = SliceStates(AlertSettings(enter_windows=2))
    >>> grade = Slice((("grade", "A"),), 0.3, 0.2, 0.2, 600, 9.0)
    >>> [[c.state for c in states.advance(found)] for found in ([grade], [grade], [grade], [])]
    [[], ['warning'], [], ['resolved']]
    """

    def __init__(self, settings: AlertSettings, tracks: dict[str, Any] | None = None) -> None:
        self.settings = settings
        # slice name -> windows in a row it was found, whether it alerts, its conditions
        self._tracks: dict[str, dict[str, Any]] = dict(tracks or {})

    def advance(self, found: list[Slice]) -> list[SliceChange]:
        changes = []
        by_name = {s.name: s for s in found}
        for name, track in list(self._tracks.items()):
            if name not in by_name:
                if track["alerting"]:
                    changes.append(SliceChange(tuple(map(tuple, track["conditions"])), "resolved", None))
                del self._tracks[name]
        for name, found_slice in by_name.items():
            track = self._tracks.setdefault(name, {"streak": 0, "alerting": False,
                                                   "conditions": [list(c) for c in found_slice.conditions]})
            track["streak"] += 1
            if not track["alerting"] and track["streak"] >= self.settings.enter_windows:
                track["alerting"] = True
                changes.append(SliceChange(found_slice.conditions, "warning", found_slice))
        return changes

    def to_json(self) -> dict[str, Any]:
        return self._tracks
