"""River detectors on block sketches: quiet on synthetic-like data, fast on a shift, any kind."""

from __future__ import annotations

import base64
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from conftest import live

from monitor.core.analyzer import Analyzer
from monitor.core.detectors import DriftDetectors
from monitor.core.profile import Profile
from monitor.core.severity import Severity
from monitor.core.types import DetectorKind, DetectorSettings, DriftSettings
from monitor.core.windows import Blocks, Window


@pytest.mark.parametrize("kind", ["adwin", "page_hinkley", "kswin"])
def test_detectors_stay_quiet_then_fire_on_a_shift(small_profile: Profile, kind: DetectorKind) -> None:
    rng = np.random.default_rng(4)
    analyzer = Analyzer(small_profile, DriftSettings(detector=DetectorSettings(kind=kind)))
    stable, shifted = 20_000, 5_000
    _, before = analyzer.observe(live(rng, stable), np.arange(stable))
    _, after = analyzer.observe(live(rng, shifted, shift=0.4), np.arange(stable, stable + shifted))
    assert before == []
    amount = [d for d in after if d.feature == "amount"]
    assert amount and amount[0].offset < stable + 2_000 and amount[0].detector == kind
    # The synthetic-likeness score moves with amount: it is amount's shift seen jointly, not a false alarm.
    assert {d.feature for d in after} <= {"amount", "synthetic_likeness"}


def test_detections_carry_the_offset_of_their_block(small_profile: Profile) -> None:
    rng = np.random.default_rng(8)
    analyzer = Analyzer(small_profile)
    offsets = np.arange(1_000_000, 1_002_000)
    _, found = analyzer.observe(live(rng, 2000, shift=1.0), offsets)
    assert found and all(d.offset in offsets[99::100] for d in found)


@pytest.mark.parametrize("kind", ["adwin", "page_hinkley", "kswin"])
def test_detector_state_round_trips_as_json(small_profile: Profile, kind: DetectorKind) -> None:
    rng = np.random.default_rng(6)
    settings = DriftSettings(detector=DetectorSettings(kind=kind))
    original = Analyzer(small_profile, settings)
    original.observe(live(rng, 10_000), np.arange(10_000))
    restored = Analyzer(small_profile, settings)
    assert restored.detectors.restore(orjson.loads(orjson.dumps(original.detectors.to_json())))
    batch, offsets = live(rng, 5_000, shift=0.4), np.arange(10_000, 15_000)
    expected = original.observe(batch, offsets)[1]
    assert expected and restored.observe(batch, offsets)[1] == expected


def test_detector_state_from_another_river_or_a_pickle_is_refused(small_profile: Profile, tmp_path: Path) -> None:
    analyzer = Analyzer(small_profile)
    state = analyzer.detectors.to_json()
    assert not analyzer.detectors.restore({**state, "river": "0.0.1"})
    assert not analyzer.detectors.restore({**state, "version": state["version"] + 1})
    # What an older worker wrote, or an attacker: a pickle whose loading would create a file.
    marker = tmp_path / "ran"
    payload = base64.b64encode(pickle.dumps(_Exploit(str(marker)))).decode()
    first = next(iter(state["detectors"]))
    assert not analyzer.detectors.restore(payload)
    assert not analyzer.detectors.restore({**state, "detectors": {**state["detectors"], first: payload}})
    assert not marker.exists()
    assert analyzer.detectors.restore(state)


class _Exploit:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path(self.path).touch, ())  # type: ignore[return-value]


def test_a_firing_without_an_effect_that_matters_is_not_reported(small_profile: Profile) -> None:
    # A shift of 0.16 sd of log amount: River notices it, but its PSI (0.02) stays far below 0.1.
    def detections(analyzer: Analyzer) -> list:
        rng = np.random.default_rng(11)
        analyzer.observe(live(rng, 10_000), np.arange(10_000))
        return analyzer.observe(live(rng, 40_000, shift=0.08), np.arange(10_000, 50_000))[1]

    analyzer = Analyzer(small_profile)
    assert [d for d in detections(analyzer) if d.feature == "amount"] == []
    lenient = Analyzer(small_profile)
    lenient.detectors = DriftDetectors(small_profile.channels, {c.name: lenient._references[c.name][0]
                                                                for c in small_profile.channels},
                                       DetectorSettings(), lambda *_: Severity.WARNING, lambda *_: 0.0, {})
    assert [d for d in detections(lenient) if d.feature == "amount" and d.signal != "novel"]


def test_a_new_category_is_detected_within_a_few_blocks(small_profile: Profile) -> None:
    rng = np.random.default_rng(12)
    analyzer = Analyzer(small_profile)
    _, before = analyzer.observe(live(rng, 20_000), np.arange(20_000))
    columns = live(rng, 2000)
    columns["channel"][rng.random(2000) < 0.08] = "fax"  # a channel the synthetic data never had
    _, after = analyzer.observe(columns, np.arange(20_000, 22_000))
    assert before == []
    novel = [d for d in after if d.feature == "channel"]
    assert novel and novel[0].signal == "novel" and novel[0].offset < 20_000 + 300
    assert [d.signal for d in novel].count("novel") == 1  # once as it rises, not at every block


def test_the_novel_share_reaches_across_batches_and_skips_empty_blocks(small_profile: Profile,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    detectors = Analyzer(small_profile).detectors
    channel = next(c for c in detectors.channels if c.name == "amount")
    seen: list[tuple[list[int], float]] = []
    update_channel = detectors._update_channel

    def record(channel: Any, counts: np.ndarray, signals: np.ndarray, ends: np.ndarray, shares: np.ndarray) -> list:
        seen.extend(zip(counts.tolist(), shares.tolist(), strict=True))
        return update_channel(channel, counts, signals, ends, shares)

    warmed = list(detectors._recent["amount"])  # the profile's own blocks: the first shares reach into them
    monkeypatch.setattr(detectors, "_update_channel", record)
    rng = np.random.default_rng(2)
    blocks = rng.integers(0, 30, (40, channel.bins.size))
    blocks[5], blocks[[7, 8]] = 0, [0] * (channel.bins.size - 1) + [9]  # empty; only missing values
    for batch in np.array_split(np.arange(40), [1, 2, 6, 9, 21, 22]):
        detectors.update({"amount": blocks[batch]}, {"amount": batch})
    kept = [b.tolist() for b in blocks if b[:-1].sum()]
    assert [block for block, _ in seen] == kept
    every = warmed + kept
    novel = np.flatnonzero(channel.bins.novel)
    for i, (_, share) in enumerate(seen, start=len(warmed)):
        recent = np.array(every[max(i - 2, 0):i + 1])
        assert share == recent[:, novel].sum() / recent[:, :-1].sum()


def test_detections_do_not_depend_on_how_blocks_are_batched(small_profile: Profile) -> None:
    """Quiet blocks take a shortcut (only the recent blocks move); a firing waiting for its effect,
    or a novel share, takes every block in turn. Batched one way or another, across a shift that
    fires, the same detections at the same offsets, and the same state."""
    rng = np.random.default_rng(5)
    analyzer = Analyzer(small_profile)
    reference = analyzer.profile.reference.counts["amount"][0].astype(float)
    quiet = rng.multinomial(100, reference / reference.sum(), 60)
    shifted = np.roll(reference, 3)  # mass moved to higher bins and past the synthetic max
    blocks = np.vstack((quiet, rng.multinomial(100, shifted / shifted.sum(), 60)))
    runs = []
    for cuts in ([], [1, 2, 30, 61, 62, 63, 90], list(range(1, 120))):
        detectors = analyzer.seeded_detectors()
        found = [d for batch in np.array_split(np.arange(120), cuts)
                 for d in detectors.update({"amount": blocks[batch]}, {"amount": batch * 100 + 99})]
        runs.append((found, orjson.dumps(detectors.to_json())))
    assert runs[0][0] and min(d.offset for d in runs[0][0]) >= 6000  # it fires, after the shift only
    assert runs[0] == runs[1] == runs[2]


def test_a_window_of_many_parts_detects_as_its_parts_one_by_one(small_profile: Profile) -> None:
    """The merger feeds a window's blocks in one update (`Window.detect`): the same
    detections, each at its own partition and offset (partitions share offsets), and the same state
    as feeding the parts in turn, also where a part lacks a channel."""
    rng = np.random.default_rng(6)
    analyzer = Analyzer(small_profile)
    names = [c.name for c in analyzer.detectors.channels][:2]
    assert "amount" in names

    def counts(name: str, blocks: int, roll: int) -> np.ndarray:
        reference = np.roll(analyzer.profile.reference.counts[name][0].astype(float), roll)
        return rng.multinomial(100, reference / reference.sum(), blocks)

    parts = []
    for partition, roll in enumerate([0, 3, 0, 3]):  # shifts in partitions 1 and 3
        ends = np.arange(40) * 100 + 99  # every partition from offset 0
        blocks = {"amount": counts("amount", 40, roll)}
        if partition != 1:
            blocks[names[1]] = counts(names[1], 40, 0)
        parts.append(("requests", partition, Blocks(blocks, dict.fromkeys(blocks, ends))))
    one_by_one = analyzer.seeded_detectors()
    expected = [(source, partition, d.feature, d.signal, d.offset) for source, partition, blocks in parts
                for d in one_by_one.update(blocks.counts, blocks.ends)]
    window = analyzer.seeded_detectors()
    found = Window(0, analyzer.sketcher.empty(), parts).detect(window)
    assert {partition for _, partition, *_ in expected} == {1, 3}  # offsets interleave: 2,799 in 1, 99 in 3
    assert [(source, partition, d.feature, d.signal, d.offset) for source, partition, d in found] == expected
    assert orjson.dumps(window.to_json()) == orjson.dumps(one_by_one.to_json())
