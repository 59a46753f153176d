"""Signals on real public data: no false alarm on a real-vs-real split, in any segment, and the
standing gap of a synthetic reference found where the synthesizer got reality wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import build_profile, window_slices
from realdata import copula, flights, loans

from monitor.core.analyzer import Analyzer
from monitor.core.columns import Columns, take
from monitor.core.profile import Profile, ProfileError, baseline, check_baseline
from monitor.core.severity import Severity

WINDOW = 2000


def replay(profile: Profile, live: Columns) -> tuple[dict[tuple[str, str], Severity], int]:
    """Every window of `live` through the core: the worst severity per feature and segment, and the
    number of detector firings."""
    analyzer = Analyzer(profile)
    worst: dict[tuple[str, str], Severity] = {}
    detections = 0
    events = len(next(iter(live.values())))
    for start in range(0, events, WINDOW):
        rows = np.arange(start, min(start + WINDOW, events))
        sketch, found = analyzer.observe(take(live, rows), rows)
        detections += len(found)
        for result in analyzer.evaluate(sketch):
            key = (result.feature, result.group.name)
            worst[key] = max(worst.get(key, Severity.OK), result.severity)
    return worst, detections


@pytest.mark.parametrize("data, reference_rows", [(loans, 2000), (lambda: flights((1, 2)), 20_000)],
                         ids=["loans-2000", "flights-20000"])
def test_a_real_vs_real_split_raises_no_alarm_in_any_segment(data, reference_rows: int, tmp_path: Path) -> None:
    spec, columns = data()
    rows = np.random.default_rng(0).permutation(len(columns[spec.segments[0]]))
    profile = build_profile(tmp_path, spec, take(columns, rows[:reference_rows]))
    live = take(columns, rows[reference_rows:])
    worst, detections = replay(profile, live)
    slices = window_slices(profile, live)
    assert len(slices) >= 4 and all(found == [] for found in slices)  # no slice departs, alone or in pairs
    assert len(profile.groups) >= 4  # all traffic and at least three segments are judged
    assert {key for key, severity in worst.items() if severity == Severity.CRITICAL} == set()
    assert detections * 100_000 <= len(rows) - reference_rows  # at most one firing per 100,000 events


def test_a_synthetic_reference_shows_its_standing_gap_where_the_synthesizer_was_wrong(tmp_path: Path) -> None:
    spec, columns = loans()
    rng = np.random.default_rng(1)
    rows = rng.permutation(len(columns["state"]))
    synthetic = copula(take(columns, rows[:2000]), spec, 2000, rng)
    # The synthesizer smoothed away the spike at zero of the count columns...
    assert np.mean(columns["paid_late_fees"] == 0) > 0.9 > 0.6 > np.mean(synthetic["paid_late_fees"] == 0)
    worst, _ = replay(build_profile(tmp_path, spec, synthetic), take(columns, rows[2000:]))
    flagged = {feature for (feature, segment), severity in worst.items()
               if segment == "all" and severity == Severity.CRITICAL}
    # ... and left out the rare states; the smooth columns it got right.
    assert {"paid_late_fees", "delinq_2y", "num_collections_last_12m", "state"} <= flagged
    assert not flagged & {"interest_rate", "installment", "annual_income", "loan_amount", "grade"}


def test_against_an_organic_baseline_the_standing_gap_is_no_drift(tmp_path: Path) -> None:
    # Synthetic reference: a copula of 2,000 loans. Organic baseline: 2,000 other real loans, in the
    # synthetic profile's bins. Live: the remaining 6,000 real loans, nothing changed.
    spec, columns = loans()
    rng = np.random.default_rng(2)
    rows = rng.permutation(len(columns["state"]))
    synthetic = build_profile(tmp_path, spec, copula(take(columns, rows[:2000]), spec, 2000, rng))
    table = tmp_path / "organic.parquet"
    pq.write_table(pa.table(take(columns, rows[2000:4000])), table)
    organic = baseline(synthetic, table)
    check_baseline(synthetic, organic, table)
    live = take(columns, rows[4000:])
    gap, _ = replay(synthetic, live)
    drift, detections = replay(organic, live)
    assert {f for (f, s), severity in gap.items() if s == "all" and severity == Severity.CRITICAL} >= {"paid_late_fees"}
    assert {key for key, severity in drift.items() if severity == Severity.CRITICAL} == set()
    assert detections == 0
    with pytest.raises(ProfileError, match="not an organic baseline of profile"):
        check_baseline(organic, synthetic, table)


def test_a_seasonal_change_is_flagged_where_it_moved_and_nothing_fires_before_it(tmp_path: Path) -> None:
    # Profile: 20,000 January-February flights. Live: 10,000 other winter flights, then 10,000 of July.
    spec, winter = flights((1, 2))
    _, summer = flights((7,))
    rng = np.random.default_rng(0)
    rows, july = rng.permutation(len(winter["dest"])), rng.permutation(len(summer["dest"]))[:10_000]
    profile = build_profile(tmp_path, spec, take(winter, rows[:20_000]))
    before, detections_before = replay(profile, take(winter, rows[20_000:30_000]))
    analyzer = Analyzer(profile)
    moved = {r.feature: r.stats["psi"] or 0.0 for r in analyzer.evaluate(analyzer.sketcher.sketch(take(summer, july)))
             if r.group.name == "all"}
    after, detections_after = replay(profile, take(summer, july))
    assert detections_before == 0 and not any(before.values())
    flagged = {feature for (feature, segment), severity in after.items() if segment == "all" and severity}
    assert {f for f, psi in moved.items() if psi >= 0.1} <= flagged <= {f for f, psi in moved.items() if psi >= 0.05}
    assert detections_after > 0
