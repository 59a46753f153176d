"""Calibrated bounds: how large a statistic gets on a window of synthetic data alone.

A window of n events drawn from the synthetic distribution has multinomial bin counts, so the
null distribution of every binned statistic is known without any live data:

- shares (out-of-range, unseen, out-of-vocabulary, wrong predictions, missing) are binomial, and
  their bound is the exact binomial quantile;
- PSI is simulated on multinomial windows drawn from the reference, and a scaled chi-square
  fitted to the simulated values by moments gives the far tail that a few hundred draws cannot.

The reference is itself a sample (a segment of a synthetic set may have a few hundred rows), so
given its size m the null is two-sample: shares follow the beta-binomial posterior predictive of
the reference's count (Jeffreys prior), and PSI is simulated between a reference of m and a window
of n both drawn from the smoothed reference, where a bin the reference never filled gets the
Jeffreys half-count instead of the statistic's 1e-4 floor.

The tail probability is the false-alarm rate divided by the number of tests in a window
(Bonferroni), so a stable stream raises at most that rate of false alarms per window. Window
sizes are rounded down to a geometric grid, which keeps the cache small and errs on the safe side.
"""

from __future__ import annotations

import math
from typing import Hashable

import numpy as np
from scipy import special
from scipy import stats as scipy_stats

from monitor.core.statistics import JUDGED, missing_rate, share

DRAWS = 400
GRID_STEPS_PER_DOUBLING = 8


def grid(n: int) -> int:
    """n rounded down to the geometric grid.

    >>> [grid(n) for n in (1, 100, 5000)]
    [1, 98, 4870]
    """
    if n <= 16:
        return max(n, 1)
    step = math.floor(math.log2(n) * GRID_STEPS_PER_DOUBLING) / GRID_STEPS_PER_DOUBLING
    return int(2**step)


class NullBounds:
    """Caches, per channel, group, statistic and window size, the bound a stable stream stays under.

    >>> bounds = NullBounds(tail=1e-4)
    >>> reference = np.array([0.25, 0.25, 0.25, 0.25, 0.0])  # four bins, nothing missing
    >>> novel = np.zeros(5, dtype=bool)
    >>> small = bounds.bound("x", reference, novel, "psi", 200)
    >>> large = bounds.bound("x", reference, novel, "psi", 20_000)
    >>> 0 < large < small < 0.25
    True
    """

    def __init__(self, tail: float, seed: int = 0) -> None:
        self.tail = tail
        self._rng = np.random.default_rng(seed)
        self._cache: dict[tuple[Hashable, str, int], float] = {}

    def bound(self, key: Hashable, reference: np.ndarray, novel: np.ndarray, statistic: str, n: int,
              reference_size: int | None = None) -> float:
        """The (1 - tail) quantile of `statistic` on n-event windows of the reference.

        `n` counts the elements the statistic is about: the non-missing ones for distributions and
        shares, all of them for the missing rate; `reference_size` counts them in the reference
        (None: the reference is exact).

        >>> reference, novel = np.array([0.9, 0.1, 0.0]), np.array([False, True, False])
        >>> exact, sampled = (NullBounds(1e-4).bound("p", reference, novel, "unseen_share", 1000, m)
        ...                   for m in (None, 300))
        >>> 0 < exact < sampled
        True
        """
        size = grid(n)
        cache_key = (key, statistic, size)
        if cache_key not in self._cache:
            self._cache[cache_key] = self._compute(reference, novel, statistic, size, reference_size)
        return self._cache[cache_key]

    def _compute(self, reference: np.ndarray, novel: np.ndarray, statistic: str, n: int, m: int | None) -> float:
        if statistic == "missing_rate_change":
            rate = float(missing_rate(reference))
            if m is None and rate == 0.0:
                return 0.0
            # Judged on the absolute change: a two-sided bound.
            return max(window_count_quantile(1 - self.tail / 2, n, rate, m) / n - rate,
                       rate - window_count_quantile(self.tail / 2, n, rate, m) / n)
        if statistic != "psi":
            rate = float(share(reference, novel))
            if m is None and rate == 0.0:  # nothing there in an exact reference: any live mass is significant
                return 0.0
            return window_count_quantile(1 - self.tail, n, rate, m) / n - rate
        present = reference[:-1] / max(reference[:-1].sum(), 1e-300)
        missing = np.zeros((DRAWS, 1))
        if m is None:
            references = np.broadcast_to(reference, (DRAWS, len(reference)))
        else:
            present = (present * m + 0.5) / (m + 0.5 * len(present))
            references = np.column_stack((self._rng.multinomial(m, present, size=DRAWS), missing))
        windows = np.column_stack((self._rng.multinomial(n, present, size=DRAWS), missing))
        values = JUDGED["psi"].function(references, windows, novel)
        return scaled_chi_square_quantile(values, 1 - self.tail)


def window_count_quantile(level: float, n: int, rate: float, m: int | None) -> float:
    """The `level` quantile of an n-event window's count at a reference rate: binomial when the
    reference is exact, else beta-binomial around the reference's count of m (Jeffreys prior).

    >>> window_count_quantile(0.999, 1000, 0.1, None), window_count_quantile(0.999, 1000, 0.1, 300)
    (130.0, 171.0)
    """
    if m is None:
        return float(scipy_stats.binom.ppf(level, n, rate))
    return float(beta_binomial_quantile(level, n, rate * m + 0.5, (1 - rate) * m + 0.5))


def beta_binomial_quantile(level: float, n: int, a: float, b: float) -> int:
    """The smallest count k with P(X <= k) >= level, for X ~ beta-binomial(n, a, b).

    By hand because scipy's `betabinom.ppf` walks the cdf one count at a time in Python (1 to 4 ms
    a call at windows of thousands, tens at hundreds of thousands), and each new window size asks
    for hundreds of bounds. Here the pmf is summed at once over the counts from one standard
    deviation on the near side of the mean (Cantelli: no quantile beyond 1/2 lies further in) to 60
    on the far side (what lies beyond is below float64's resolution of any level asked for).

    >>> beta_binomial_quantile(0.999, 1000, 30.5, 270.5), float(scipy_stats.betabinom(1000, 30.5, 270.5).ppf(0.999))
    (171, 171.0)
    """
    mean = n * a / (a + b)
    sd = math.sqrt(n * a * b * (a + b + n) / ((a + b) ** 2 * (a + b + 1)))
    upper = level >= 0.5
    low = max(math.floor(mean - (sd if upper else 60 * sd + 60)), 0)
    high = min(math.ceil(mean + (60 * sd + 60 if upper else sd)), n)
    counts = np.arange(low, high + 1, dtype=np.float64)
    pmf = np.exp(special.gammaln(n + 1) - special.gammaln(counts + 1) - special.gammaln(n - counts + 1)
                 + special.betaln(counts + a, n - counts + b) - special.betaln(a, b))
    if upper:  # P(X > k) from the far end, precise for the small tails asked
        above = np.append(np.cumsum(pmf[:0:-1])[::-1], 0.0)
        return low + int(np.argmax(above <= 1 - level))
    return low + int(np.argmax(np.cumsum(pmf) >= level))


def scaled_chi_square_quantile(values: np.ndarray, level: float) -> float:
    """The `level` quantile of a * chi2(k) with a and k matched to the sample's mean and variance."""
    mean, variance = float(np.mean(values)), float(np.var(values))
    if mean <= 0 or variance <= 0:
        return float(np.max(values))
    scale, dof = variance / (2 * mean), 2 * mean * mean / variance
    return float(scale * scipy_stats.chi2.ppf(level, dof))
