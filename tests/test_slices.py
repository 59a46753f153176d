"""Slice discovery on real data: a drift planted only in the conjunction of two values (each
value's share unchanged) is found as that slice (real-vs-real splits: `test_real_data.py`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import build_profile, window_slices
from realdata import loans

from monitor.core.columns import take


def test_a_drift_in_a_conjunction_alone_is_found_as_that_slice(tmp_path: Path) -> None:
    spec, columns = loans()
    rng = np.random.default_rng(4)
    rows = rng.permutation(len(columns["grade"]))
    profile = build_profile(tmp_path, spec, take(columns, rows[:2000]))
    live = take(columns, rows[2000:])
    # Swap `term` between grade-A loans of 36 months and other loans of 60: the share of every grade
    # and of every term stays as it was; grade A of 60 months grows by 6 points of traffic.
    grade, term = live["grade"], live["term"]
    a36 = np.flatnonzero((grade == "A") & (term == "36"))
    other60 = np.flatnonzero((grade != "A") & (term == "60"))
    swaps = int(0.06 * len(grade))
    assert min(len(a36), len(other60)) >= swaps
    chosen_a, chosen_other = rng.choice(a36, swaps, replace=False), rng.choice(other60, swaps, replace=False)
    term[chosen_a], term[chosen_other] = "60", "36"
    for window in window_slices(profile, live):
        names = {s.name: s for s in window}
        planted = names.get("grade=A & term=60") or names.get("term=60 & grade=A")
        assert planted is not None, list(names)
        assert planted.live_share - planted.expected_share > 0.04 and planted.z > 5
        assert not any(len(s.conditions) == 1 and s.conditions[0][0] in ("grade", "term") for s in window)
