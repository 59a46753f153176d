"""Hidden drift on real data that every marginal misses: a drift planted only in the conjunction
of two values is found as that slice, and a broken correlation by the synthetic-likeness channel
(real-vs-real splits, where neither fires: `test_real_data.py`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import build_profile, window_slices
from realdata import loans

from monitor.core.analyzer import Analyzer
from monitor.core.columns import take
from monitor.core.likeness import FEATURE as LIKENESS
from monitor.core.severity import Severity


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


def test_a_broken_correlation_is_flagged_by_synthetic_likeness_alone(tmp_path: Path) -> None:
    """Installments shuffled among live loans: every feature's own distribution is unchanged, the
    installment no longer goes with the loan amount."""
    spec, columns = loans()
    rng = np.random.default_rng(6)
    rows = rng.permutation(len(columns["grade"]))
    profile = build_profile(tmp_path, spec, take(columns, rows[:2000]))
    live = take(columns, rows[2000:6000])
    live["installment"] = rng.permutation(live["installment"])
    analyzer = Analyzer(profile)
    sketch, _ = analyzer.observe(live, np.arange(4000))
    flagged = {r.feature: r for r in analyzer.evaluate(sketch) if r.group.field is None and r.severity}
    assert list(flagged) == [LIKENESS], list(flagged)
    assert flagged[LIKENESS].severity >= Severity.WARNING and (flagged[LIKENESS].stats["psi"] or 0) > 0.1
