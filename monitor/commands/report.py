"""`synthdrift report`: the HTML report of a file of live events against a profile (see
`monitor.export.report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from monitor.commands.check import check
from monitor.core.analyzer import Analyzer
from monitor.core.profile import Profile
from monitor.core.types import DriftSettings
from monitor.export.report import ReportData, render


def report_html(profile: Profile, lines: Iterable[bytes], source: Path, window: int = 5000,
                settings: DriftSettings | None = None, baseline: Profile | None = None) -> str:
    """Runs `check` over the events, then renders every event's distributions and each window's verdicts."""
    settings = settings or DriftSettings()
    checked = check(profile, lines, window=window, settings=settings, baseline=baseline)
    assert checked.whole is not None
    reference = baseline or profile
    data = ReportData(
        profile=reference, settings=settings, sketch=checked.whole,
        results=Analyzer(reference, settings).evaluate(checked.whole),
        windows=[{"label": f"{w['start']:,}", "results": w["results"]} for w in checked.windows],
        detections=checked.detections, coverage_gaps=checked.coverage_gaps,
        accuracy=checked.accuracy.get("by_provenance", []), slices=checked.slices,
        title=f"synthdrift report: {profile.spec.model}", source=source.name)
    return render(data)
