"""Sketches are mergeable: the merge of the parts' sketches is the sketch of the union."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson
import pytest
from conftest import build_profile, live
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from realdata import loans

from monitor.core.analyzer import Analyzer
from monitor.core.channels import NumericBins, NumericEncoder
from monitor.core.columns import Columns, take, to_labels
from monitor.core.likeness import FEATURE as LIKENESS
from monitor.core.likeness import _scores
from monitor.core.profile import Profile
from monitor.core.severity import Severity
from monitor.core.sketch import Sketch
from monitor.core.spec import Spec

numbers = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False))
labels = st.one_of(st.none(), st.sampled_from(["web", "app", "email", "fax", "pager"]))
texts = st.one_of(st.none(), st.text(max_size=40))
languages = st.one_of(st.none(), st.sampled_from(["en", "de", "es", "pt"]))
rows = st.lists(st.tuples(numbers, numbers, labels, texts, languages), max_size=60)


def to_columns(data: list[tuple]) -> Columns:
    amount, score, channel, body, language = zip(*data, strict=True) if data else ((),) * 5
    return {"amount": np.array(amount, dtype=float), "score": np.array(score, dtype=float),
            "channel": to_labels(channel), "body": to_labels(body), "language": to_labels(language)}


def assert_same(a: Sketch, b: Sketch) -> None:
    assert a.events == b.events
    for name in a.counts:
        np.testing.assert_array_equal(a.counts[name], b.counts[name])
    for name in a.sums:
        np.testing.assert_allclose(a.sums[name], b.sums[name], rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(a.squares[name], b.squares[name], rtol=1e-9, atol=1e-3)
    assert a.gaps == b.gaps


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows, rows)
def test_merge_of_parts_is_the_sketch_of_the_union(small_profile: Profile, first: list, second: list) -> None:
    sketcher = small_profile.sketcher()
    merged = sketcher.sketch(to_columns(first)).merge(sketcher.sketch(to_columns(second)))
    assert_same(merged, sketcher.sketch(to_columns(first + second)))


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows, st.randoms())
def test_a_sketch_does_not_depend_on_event_order(small_profile: Profile, data: list, random) -> None:
    shuffled = list(data)
    random.shuffle(shuffled)
    sketcher = small_profile.sketcher()
    assert_same(sketcher.sketch(to_columns(data)), sketcher.sketch(to_columns(shuffled)))


def test_sketch_survives_a_json_round_trip(small_profile: Profile) -> None:
    sketch = small_profile.sketcher().sketch(to_columns([(1.0, None, "fax", "hi there", "es")] * 3))
    text = orjson.dumps(sketch.to_json(), option=orjson.OPT_SERIALIZE_NUMPY)
    assert_same(Sketch.from_json(orjson.loads(text)), sketch)


def test_every_event_is_counted_once_per_channel_and_per_segment(small_profile: Profile) -> None:
    sketch = small_profile.sketcher().sketch(to_columns([(1.0, 2.0, "web", "a b", "en")] * 5 +
                                                        [(1.0, 2.0, "web", "a b", "es")] * 2))
    en = [g.name for g in small_profile.groups].index("language=en")
    assert sketch.counts["amount"][0].sum() == 7 and sketch.counts["amount"][en].sum() == 5
    assert sketch.counts["body.oov"][0].sum() == 14  # tokens, not events
    assert sketch.gaps == {"language": {"es": 2}}


def test_coverage_gap_values_are_bounded(small_profile: Profile) -> None:
    languages = [f"lang{i}" for i in range(300)]
    sketch = small_profile.sketcher().sketch(to_columns([(1.0, 1.0, "web", "x", v) for v in languages]))
    assert len(sketch.gaps["language"]) == 101 and sketch.gaps["language"]["(other)"] == 200


# Edge cases, judged end to end


def judge_live(profile: Profile, live: Columns) -> dict[str, tuple[Severity, dict]]:
    analyzer = Analyzer(profile)
    results = analyzer.evaluate(analyzer.sketcher.sketch(live))
    return {r.feature: (r.severity, r.stats) for r in results if r.group.field is None}


@pytest.fixture(scope="module")
def edge_profile(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    rows = 2000
    spec = Spec(model="edge", features={"constant": "numeric", "empty": "numeric", "single": "categorical"})
    columns = {"constant": np.full(rows, 5.0), "empty": np.full(rows, np.nan), "single": np.full(rows, "a")}
    return build_profile(tmp_path_factory.mktemp("edge"), spec, columns)


def test_a_live_window_like_the_synthetic_one_is_ok(edge_profile: Profile) -> None:
    live = {"constant": np.full(500, 5.0), "empty": np.full(500, np.nan), "single": to_labels(["a"] * 500)}
    verdicts = judge_live(edge_profile, live)
    assert {f: s for f, (s, _) in verdicts.items()} == dict.fromkeys(verdicts, Severity.OK)
    assert verdicts["constant"][1]["psi"] == pytest.approx(0.0, abs=1e-9)


def test_edge_cases_that_depart_are_critical(edge_profile: Profile) -> None:
    live = {"constant": np.full(500, 6.0), "empty": np.ones(500), "single": to_labels(["b"] * 500)}
    verdicts = judge_live(edge_profile, live)
    assert verdicts["constant"][1]["out_of_range_share"] == 1.0
    assert verdicts["empty"][1]["missing_rate_change"] == -1.0
    assert verdicts["single"][1]["unseen_share"] == 1.0
    assert all(severity == Severity.CRITICAL for severity, _ in verdicts.values())


def test_an_empty_window_has_no_statistics_and_no_alarm(edge_profile: Profile) -> None:
    analyzer = Analyzer(edge_profile)
    results = analyzer.evaluate(analyzer.sketcher.empty())
    assert {r.feature for r in results} == {"constant", "empty", "single"}
    assert all(r.severity == Severity.OK and r.events == 0 for r in results)
    assert all(value is None for r in results for value in r.stats.values())


def test_affine_rescaling_of_a_feature_changes_no_statistic(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    train, live = rng.normal(0, 1, 3000), rng.normal(0.3, 1.2, 800)
    spec = Spec(model="m", features={"x": "numeric"})
    stats = []
    for scale, shift in ((1.0, 0.0), (250.0, -40.0)):
        (tmp_path / str(scale)).mkdir()
        profile = build_profile(tmp_path / str(scale), spec, {"x": train * scale + shift})
        stats.append(judge_live(profile, {"x": live * scale + shift})["x"][1])
    for name in ("psi", "js", "ks", "wasserstein", "tail_share", "mean_shift_sd"):
        assert stats[0][name] == pytest.approx(stats[1][name], rel=1e-6, abs=1e-9), name


@pytest.fixture(scope="module")
def two_field_profile(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    rng = np.random.default_rng(8)
    rows = 3000
    columns = {"amount": rng.normal(10, 2, rows), "body": rng.choice(["late order", "refund me now"], rows),
               "language": rng.choice(["en", "de", "fr"], rows), "region": rng.choice(["eu", "us"], rows)}
    spec = Spec(model="two", features={"amount": "numeric", "body": "text"}, segments=("language", "region"))
    return build_profile(tmp_path_factory.mktemp("two"), spec, columns, min_segment_rows=100)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(numbers, texts, st.one_of(st.none(), st.sampled_from(["en", "de", "fr", "es"])),
                          st.one_of(st.none(), st.sampled_from(["eu", "us", "apac"]))), min_size=1, max_size=80))
def test_each_segment_counts_what_its_own_rows_would(two_field_profile: Profile, data: list) -> None:
    """Every group's row of a sketch equals the all-traffic row of the sketch of its rows alone."""
    amount, body, language, region = zip(*data, strict=True)
    live = {"amount": np.array(amount, dtype=float), "body": to_labels(body), "language": to_labels(language),
            "region": to_labels(region)}
    sketcher = two_field_profile.sketcher()
    whole = sketcher.sketch(live)
    for g, group in enumerate(two_field_profile.groups[1:], start=1):
        assert group.field is not None
        rows = live[group.field] == group.value
        alone = sketcher.sketch({name: values[rows] for name, values in live.items()})
        for name in whole.counts:
            np.testing.assert_array_equal(whole.counts[name][g], alone.counts[name][0])
        for name in whole.sums:
            np.testing.assert_allclose(whole.sums[name][g], alone.sums[name][0], rtol=1e-9, atol=1e-6)


def test_only_a_statistic_past_a_threshold_has_its_bound_simulated(small_profile: Profile) -> None:
    rng = np.random.default_rng(3)
    window = live(rng, 3000, shift=1.0)
    window["score"][rng.random(3000) < 0.1] = np.nan  # missing as often as in the profile
    analyzer = Analyzer(small_profile)
    results = analyzer.evaluate(analyzer.sketcher.sketch(window))
    flagged = {r.feature for r in results if r.severity}
    keys = cast(list[tuple[tuple[str, int], str, int]], list(analyzer.bounds._cache))
    simulated = {channel.split(".")[0] for (channel, _), _, _ in keys}
    assert "amount" in flagged and flagged <= simulated
    assert not simulated & {"score", "channel", "body"}  # the stable ones: below every threshold


def test_numeric_channels_encoded_together_bin_as_each_alone(tmp_path: Path) -> None:
    """The sketcher's one search per feature, among its bin bounds and likeness knots at once, bins
    every value as each channel does alone: on real loans (spikes at 0, integer features, missing
    values), and on every edge and knot, a float to either side, infinities and NaN."""
    spec, columns = loans()
    profile = build_profile(tmp_path, spec, take(columns, np.arange(5000)))
    numeric = [name for name, kind in spec.features.items() if kind == "numeric"]
    likeness = next(c.likeness for c in profile.channels if c.likeness is not None)
    marks = {name: [np.array([np.inf, -np.inf, np.nan])] for name in numeric}
    for channel in profile.channels:
        if channel.column in marks and isinstance(channel.bins, NumericBins):
            marks[channel.column].append(channel.bins.edges)
    for name, knots in zip(likeness.features, likeness.knots, strict=True):
        marks[name].append(knots)
    with np.errstate(over="ignore"):
        edges = {name: np.concatenate([(e, np.nextafter(e, -np.inf), np.nextafter(e, np.inf)) for e in found],
                                      axis=None) for name, found in marks.items()}
    width = max(map(len, edges.values()))
    for live_columns in ({name: columns[name][5000:] for name in numeric},
                         {name: np.resize(e, width) for name, e in edges.items()}):
        together = NumericEncoder(profile.channels).encode(live_columns)
        covered = [c for c in profile.channels if c.column in numeric and c.kind == "numeric" and not c.descriptor]
        assert {c.name for c in covered} == set(together) and len(covered) == len(numeric) + 1  # and likeness
        for channel in covered:
            alone = channel.encode(live_columns, {})
            assert together[channel.name].index.tolist() == alone.index.tolist() == binned(channel.bins, alone.values)
            np.testing.assert_array_equal(together[channel.name].values, alone.values)
        scores = np.array([_scores()[np.searchsorted(k, live_columns[f], "left")
                                     + np.searchsorted(k, live_columns[f], "right")]
                           for f, k in zip(likeness.features, likeness.knots, strict=True)])
        scores[np.isnan(np.array([live_columns[f] for f in likeness.features]))] = 0.0  # missing: the median
        np.testing.assert_array_equal(together[LIKENESS].values, likeness.distance(live_columns, scores))


def binned(bins: Any, values: Any) -> list[int]:
    """A value's numeric bin by its definition: bounds at or below it; missing last."""
    return np.where(np.isnan(values), bins.interior + 2, np.searchsorted(bins.bounds, values, "right")).tolist()
