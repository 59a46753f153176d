"""The acceptance scenario: 20 numeric + 2 categorical features, drift injected at event 50,000."""

from __future__ import annotations

from pathlib import Path

import pytest
import scenario

from monitor.commands.check import CheckReport, check
from monitor.core.profile import Profile

SHIFT, WINDOW = 50_000, 5_000
DRIFTED = {*scenario.SHIFTED, "channel"}


@pytest.fixture(scope="module")
def report(scenario_profile: Profile, scenario_files: dict[str, Path]) -> CheckReport:
    with scenario_files["live"].open("rb") as lines:
        return check(scenario_profile, lines, window=WINDOW)


def test_every_window_is_reported(report: CheckReport) -> None:
    assert report.events == 100_000 and report.invalid == 0
    assert [(w["start"], w["end"]) for w in report.windows] == [(s, s + WINDOW) for s in range(0, 100_000, WINDOW)]


def test_drifted_features_are_flagged_in_every_window_after_the_shift(report: CheckReport) -> None:
    for window in report.windows[SHIFT // WINDOW:]:
        flagged = {r["feature"] for r in window["results"] if r["segment"] is None and r["severity"] != "ok"}
        assert flagged == DRIFTED, window["start"]


def test_no_stable_feature_is_flagged_in_any_window_overall_or_per_segment(report: CheckReport) -> None:
    segments_seen = set()
    for window in report.windows:
        for result in window["results"]:
            segments_seen.add(str(result["segment"]))
            if result["feature"] not in DRIFTED or window["start"] < SHIFT:
                assert result["severity"] == "ok", (window["start"], result)
    assert len(segments_seen) == 7  # all traffic, three languages, three regions


def test_detectors_fire_for_each_drifted_feature_soon_after_the_shift_and_never_before(report: CheckReport) -> None:
    first: dict[str, int] = {}
    for detection in report.detections:
        assert detection["offset"] >= SHIFT, detection
        first.setdefault(detection["feature"], detection["offset"])
    assert set(first) == DRIFTED
    assert all(offset < SHIFT + 2_000 for offset in first.values()), first


def test_the_new_language_is_a_coverage_gap(report: CheckReport) -> None:
    gaps = {(g["field"], g["value"]): g["live_share"] for g in report.coverage_gaps}
    assert gaps[("language", scenario.NEW_LANGUAGE)] == pytest.approx(0.06, abs=0.01)  # 12% of the second half
    assert ("channel", scenario.NEW_CHANNEL) in gaps
    assert all(g["coverage_gaps"] == [] for g in report.windows[: SHIFT // WINDOW])
