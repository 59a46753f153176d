"""River detectors on block sketches: quiet on synthetic-like data, fast on a shift, any kind."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.analyzer import Analyzer, DriftSettings
from monitor.columns import Columns, to_labels
from monitor.detectors import DetectorSettings
from monitor.profile import Profile


def live(rng: np.random.Generator, rows: int, shift: float = 0.0) -> Columns:
    return {
        "amount": rng.lognormal(3 + shift, 0.5, rows),
        "score": rng.normal(0, 1, rows),
        "channel": to_labels(rng.choice(["web", "app", "email"], rows, p=[0.5, 0.3, 0.2])),
        "body": to_labels(rng.choice(["my order is late", "refund please", "cannot log in to my account"], rows)),
        "language": to_labels(rng.choice(["en", "de"], rows, p=[0.7, 0.3])),
    }


@pytest.mark.parametrize("kind", ["adwin", "page_hinkley", "kswin"])
def test_detectors_stay_quiet_then_fire_on_a_shift(small_profile: Profile, kind: str) -> None:
    rng = np.random.default_rng(4)
    analyzer = Analyzer(small_profile, DriftSettings(detector=DetectorSettings(kind=kind)))
    stable, shifted = 20_000, 5_000
    _, before = analyzer.observe(live(rng, stable), np.arange(stable))
    _, after = analyzer.observe(live(rng, shifted, shift=0.4), np.arange(stable, stable + shifted))
    assert before == []
    amount = [d for d in after if d.feature == "amount"]
    assert amount and amount[0].offset < stable + 2_000 and amount[0].detector == kind
    assert {d.feature for d in after} == {"amount"}


def test_detections_carry_the_offset_of_their_block(small_profile: Profile) -> None:
    rng = np.random.default_rng(8)
    analyzer = Analyzer(small_profile)
    offsets = np.arange(1_000_000, 1_002_000)
    _, found = analyzer.observe(live(rng, 2000, shift=1.0), offsets)
    assert found and all(d.offset in offsets[99::100] for d in found)
