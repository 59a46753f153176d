"""Calibrated bounds hold their false-alarm rate on windows drawn from the synthetic distribution."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from monitor.core import statistics
from monitor.core.calibration import NullBounds, beta_binomial_quantile, grid

REFERENCE = np.array([0.05, 0.1, 0.2, 0.3, 0.2, 0.1, 0.05, 0.0, 0.0])  # last two: novel bin, missing
NOVEL = np.array([False] * 7 + [True, False])


@pytest.mark.parametrize("n", [60, 400, 3000])
def test_psi_bound_is_exceeded_at_about_the_tail_rate(n: int) -> None:
    tail = 0.02
    bound = NullBounds(tail=tail, seed=1).bound("x", REFERENCE, NOVEL, "psi", n)
    draws = np.random.default_rng(2).multinomial(grid(n), REFERENCE, size=20_000)
    rate = float(np.mean(statistics.JUDGED["psi"].function(REFERENCE, draws, NOVEL) > bound))
    assert 0.005 < rate < 0.04, rate


def test_share_bounds_are_binomial_quantiles() -> None:
    reference = np.array([0.9, 0.1, 0.0])  # right, wrong, missing: a 10% synthetic error rate
    novel = np.array([False, True, False])
    bounds = NullBounds(tail=0.001)
    small, large = (bounds.bound("p", reference, novel, "accuracy_gap", n) for n in (100, 10_000))
    assert 0 < large < small
    draws = np.random.default_rng(3).binomial(grid(10_000), 0.1, 100_000) / grid(10_000) - 0.1
    assert np.mean(draws > large) <= 0.002


def test_a_bin_the_synthetic_data_never_filled_has_a_zero_bound() -> None:
    assert NullBounds(tail=1e-6).bound("x", REFERENCE, NOVEL, "out_of_range_share", 500) == 0.0


def test_bounds_shrink_as_windows_grow() -> None:
    bounds = NullBounds(tail=1e-4)
    values = [bounds.bound("x", REFERENCE, NOVEL, "psi", n) for n in (100, 1000, 10_000)]
    assert values[0] > values[1] > values[2] > 0


@pytest.mark.parametrize("n", [1, 17, 98, 1000, 4870])
@pytest.mark.parametrize("rate", [0.0, 0.01, 0.5, 1.0])
@pytest.mark.parametrize("m", [10, 300, 20_000])
def test_beta_binomial_quantiles_are_scipys(n: int, rate: float, m: int) -> None:
    a, b = rate * m + 0.5, (1 - rate) * m + 0.5
    for level in (1e-6, 1e-3, 0.999, 1 - 1e-6):
        assert beta_binomial_quantile(level, n, a, b) == scipy_stats.betabinom(n, a, b).ppf(level), level
