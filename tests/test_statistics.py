"""The statistics against their textbook definitions (SciPy) and their invariances."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats as scipy_stats
from scipy.spatial import distance

from monitor.core import statistics

counts_vectors = st.integers(2, 12).flatmap(
    lambda k: arrays(np.int64, k, elements=st.integers(0, 10_000)).filter(lambda a: a[:-1].sum() > 0))


@given(counts_vectors)
def test_identical_inputs_give_zero_divergence(counts: np.ndarray) -> None:
    p = statistics.distribution(counts)
    assert statistics.psi(p, p) == pytest.approx(0.0, abs=1e-12)
    assert statistics.js_distance(p, p) == pytest.approx(0.0, abs=1e-6)
    assert statistics.ks(p, p) == 0.0
    atoms = np.arange(len(p), dtype=float)
    assert statistics.wasserstein(atoms, p, atoms, p) == pytest.approx(0.0, abs=1e-12)


@given(counts_vectors, st.data())
def test_psi_and_js_are_symmetric_and_non_negative(counts: np.ndarray, data: st.DataObject) -> None:
    other = data.draw(arrays(np.int64, len(counts), elements=st.integers(1, 10_000)))
    p, q = statistics.distribution(counts), statistics.distribution(other)
    assert statistics.psi(p, q) == pytest.approx(statistics.psi(q, p))
    assert statistics.psi(p, q) >= 0
    assert 0 <= statistics.js_distance(p, q) <= 1


@given(st.lists(st.floats(0.01, 1), min_size=2, max_size=10), st.lists(st.floats(0.01, 1), min_size=2, max_size=10))
def test_js_distance_matches_scipy(a: list[float], b: list[float]) -> None:
    k = min(len(a), len(b))
    p, q = np.array(a[:k]) / sum(a[:k]), np.array(b[:k]) / sum(b[:k])
    assert statistics.js_distance(p, q) == pytest.approx(distance.jensenshannon(p, q, base=2), abs=2e-3)


@settings(max_examples=50)
@given(st.lists(st.tuples(st.floats(-100, 100), st.floats(0.01, 1)), min_size=1, max_size=8),
       st.lists(st.tuples(st.floats(-100, 100), st.floats(0.01, 1)), min_size=1, max_size=8))
def test_wasserstein_matches_scipy(u: list[tuple[float, float]], v: list[tuple[float, float]]) -> None:
    u_at, u_w = map(np.array, zip(*u, strict=True))
    v_at, v_w = map(np.array, zip(*v, strict=True))
    ours = statistics.wasserstein(u_at, u_w / u_w.sum(), v_at, v_w / v_w.sum())
    assert ours == pytest.approx(scipy_stats.wasserstein_distance(u_at, v_at, u_w, v_w), rel=1e-6, abs=1e-9)


def test_chi_square_matches_scipy() -> None:
    reference = np.array([0.5, 0.3, 0.2])
    counts = np.array([40, 35, 25, 7])  # the last bin is missing: not part of the test
    expected = scipy_stats.chisquare(counts[:-1], f_exp=100 * statistics._floored(reference)).statistic
    assert statistics.chi_square(reference, counts) == pytest.approx(expected)


def test_ks_is_the_largest_gap_between_binned_cdfs() -> None:
    assert statistics.ks(np.array([0.5, 0.5, 0.0]), np.array([0.1, 0.4, 0.5])) == pytest.approx(0.5)


def test_shares_and_missing_rate() -> None:
    counts = np.array([[6, 2, 2, 10]])  # bins a, b, novel c, then missing
    novel = np.array([False, False, True, False])
    assert statistics.share(counts, novel) == pytest.approx([0.2])
    assert statistics.missing_rate(counts) == pytest.approx([0.5])
    assert statistics.missing_rate(np.zeros((1, 4))) == pytest.approx([0.0])


def test_statistics_vectorise_over_leading_axes() -> None:
    rng = np.random.default_rng(0)
    reference = np.array([0.2, 0.3, 0.5, 0.0])
    draws = rng.multinomial(1000, reference, size=7)
    each = [statistics.JUDGED["psi"].function(reference, row, np.zeros(4, bool)) for row in draws]
    assert statistics.JUDGED["psi"].function(reference, draws, np.zeros(4, bool)) == pytest.approx(each)
