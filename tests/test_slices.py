"""Hidden drift on real data that every marginal misses: a drift planted only in the conjunction
of two values is found as that slice, and a broken correlation by the synthetic-likeness channel
(real-vs-real splits, where neither fires: `test_real_data.py`). Weak slices: where a model's
accuracy falls below its synthetic evaluation, and nowhere on a real-vs-real split."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from conftest import build_profile, window_slices
from realdata import loans

from monitor.core.analyzer import Analyzer
from monitor.core.columns import Columns, take
from monitor.core.likeness import FEATURE as LIKENESS
from monitor.core.profile import Profile
from monitor.core.severity import Severity
from monitor.core.slices import Slice
from monitor.core.spec import Spec


def split(spec: Spec, columns: Columns, rng: np.random.Generator, directory: Path) -> tuple[Profile, Columns]:
    """A profile of 2,000 random real rows, and the other rows as live traffic."""
    rows = rng.permutation(len(columns["grade"]))
    return build_profile(directory, spec, take(columns, rows[:2000])), take(columns, rows[2000:])


def test_a_drift_in_a_conjunction_alone_is_found_as_that_slice(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    profile, live = split(*loans(), rng, tmp_path)
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


def predicted_loans() -> tuple[Spec, Columns]:
    """Loans with a model's guess of their term (60 months for large loans), right 71% of the
    time overall and from 57% to 77% by grade: accuracy that differs by slice, as real models' does."""
    spec, columns = loans()
    spec = dataclasses.replace(spec, label="outcome", prediction_label="predicted")
    columns["outcome"] = columns["term"].copy()
    columns["predicted"] = np.where(columns["loan_amount"] > 20_000, "60", "36").astype(object)
    return spec, columns


def weak(found: list[Slice]) -> dict[str, Slice]:
    return {s.name: s for s in found if s.weak}


def test_no_weak_slice_on_a_real_vs_real_split(tmp_path: Path) -> None:
    spec, columns = predicted_loans()
    windows = window_slices(*split(spec, columns, np.random.default_rng(7), tmp_path))
    assert len(windows) == 4 and all(not weak(found) for found in windows), [list(weak(f)) for f in windows]
    by_grade = [np.mean(columns["outcome"][columns["grade"] == g] == columns["predicted"][columns["grade"] == g])
                for g in "ABCDE"]
    assert max(by_grade) - min(by_grade) > 0.15  # accuracy does differ by slice: the reference must follow it


def test_a_weak_slice_is_found_alone_and_in_a_conjunction(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    profile, live = split(*predicted_loans(), rng, tmp_path)
    # The model turns its guess around on half of grade-B loans, and on 80% of grade-A loans of
    # renters alone.
    grade, home = live["grade"], live["homeownership"]
    for hit, share in ((grade == "B", 0.5), ((grade == "A") & (home == "RENT"), 0.8)):
        flipped = np.flatnonzero(hit & (rng.random(len(hit)) < share))
        live["predicted"][flipped] = np.where(live["outcome"][flipped] == "60", "36", "60")
    for found in window_slices(profile, live):
        names = weak(found)
        grade_b = names["grade=B"]
        assert grade_b.accuracy is not None and grade_b.reference_accuracy is not None
        assert grade_b.accuracy < grade_b.reference_accuracy - 0.2
        renters = names.get("grade=A & homeownership=RENT") or names.get("homeownership=RENT & grade=A")
        assert renters is not None and renters.labelled >= 30, list(names)
        assert not any(len(s.conditions) == 2 and ("grade", "B") in s.conditions for s in names.values())
