"""Drift statistics on binned counts: pure NumPy, vectorised over any leading axes.

Every function takes bin counts or probabilities whose last axis is the channel's bins, the last
bin being `missing`; distribution statistics look only at the bins before it. A leading axis lets
the calibration compute a statistic for hundreds of simulated windows in one call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from monitor.core.severity import Threshold

EPSILON = 1e-4  # probability floor, so that empty bins give finite divergences


def distribution(counts: np.ndarray) -> np.ndarray:
    """Probabilities over the non-missing bins (all zeros when there are none)."""
    present = np.asarray(counts, dtype=np.float64)[..., :-1]
    total = present.sum(axis=-1, keepdims=True)
    return np.divide(present, total, out=np.zeros_like(present), where=total > 0)


def _floored(p: np.ndarray) -> np.ndarray:
    return (p + EPSILON) / (1.0 + EPSILON * p.shape[-1])


def psi(reference: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Population stability index of two distributions.

    >>> round(float(psi(np.array([0.5, 0.5]), np.array([0.5, 0.5]))), 6)
    0.0
    >>> round(float(psi(np.array([0.5, 0.5]), np.array([0.9, 0.1]))), 3)  # exactly 0.879 without the floor
    0.878
    """
    return np.sum(psi_terms(reference, live), axis=-1)


def psi_terms(reference: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Each bin's share of the PSI: which bins carry the difference."""
    p, q = _floored(reference), _floored(live)
    return (q - p) * np.log(q / p)


def js_distance(reference: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (base 2): 0 for equal distributions, 1 for disjoint ones."""
    p, q = _floored(reference), _floored(live)
    m = (p + q) / 2
    divergence = 0.5 * np.sum(p * np.log2(p / m), axis=-1) + 0.5 * np.sum(q * np.log2(q / m), axis=-1)
    return np.sqrt(np.clip(divergence, 0.0, 1.0))


def ks(reference: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Kolmogorov-Smirnov distance between the binned CDFs (a lower bound of the exact one)."""
    return np.max(np.abs(np.cumsum(live - reference, axis=-1)), axis=-1)


def chi_square(reference: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Pearson's chi-square of the live non-missing counts against the reference distribution."""
    observed = np.asarray(counts, dtype=np.float64)[..., :-1]
    expected = observed.sum(axis=-1, keepdims=True) * _floored(reference)
    terms = np.divide((observed - expected) ** 2, expected, out=np.zeros_like(expected), where=expected > 0)
    return np.sum(terms, axis=-1)


def share(counts: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Share of the non-missing mass that falls in `bins` (a boolean mask over all bins)."""
    return np.sum(distribution(counts) * bins[:-1], axis=-1)


def missing_rate(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1)
    return np.divide(counts[..., -1], total, out=np.zeros_like(total), where=total > 0)


def wilson_interval(successes: np.ndarray, trials: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion (95% by default): sound with few trials, where the
    normal approximation runs past 0 or 1 (NaN where there are none).

    >>> [round(float(v), 3) for v in wilson_interval(np.array(8), np.array(10))]
    [0.49, 0.943]
    """
    n = np.asarray(trials, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.asarray(successes, dtype=np.float64) / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def difference_interval(right_a: np.ndarray, trials_a: np.ndarray, right_b: np.ndarray, trials_b: np.ndarray,
                        z: float = 1.96) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The difference of two independent proportions, a minus b, with Newcombe's hybrid score
    interval (his method 10, from each side's Wilson interval): sound with few trials, where the
    Wald interval is not. Written here because SciPy and statsmodels' versions take one pair at a
    time, and this one is vectorised over segments.

    Newcombe's own example (Stat. Med. 1998, table II: 56/70 against 48/80; 0.0524 to 0.3339):

    >>> [round(float(v), 4) for v in difference_interval(np.array(56), np.array(70), np.array(48), np.array(80))]
    [0.2, 0.0524, 0.3339]
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        p_a = np.asarray(right_a, dtype=np.float64) / trials_a
        p_b = np.asarray(right_b, dtype=np.float64) / trials_b
    low_a, high_a = wilson_interval(right_a, trials_a, z)
    low_b, high_b = wilson_interval(right_b, trials_b, z)
    difference = p_a - p_b
    return (difference, difference - np.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2),
            difference + np.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2))


def wasserstein(reference_atoms: np.ndarray, reference: np.ndarray,
                live_atoms: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Earth mover's distance between two discrete distributions (atoms with probabilities).

    Atoms of zero probability may sit anywhere: they change nothing.

    >>> float(wasserstein(np.array([0.0]), np.array([1.0]), np.array([2.0]), np.array([1.0])))
    2.0
    """
    positions = np.concatenate((reference_atoms, live_atoms), axis=-1)
    weights = np.concatenate((reference, -live), axis=-1)
    order = np.argsort(positions, axis=-1, kind="stable")
    gaps = np.diff(np.take_along_axis(positions, order, axis=-1), axis=-1)
    mass = np.cumsum(np.take_along_axis(weights, order, axis=-1), axis=-1)[..., :-1]
    return np.sum(np.abs(mass) * gaps, axis=-1)


def _psi_of_counts(reference: np.ndarray, counts: np.ndarray, novel: np.ndarray) -> np.ndarray:
    return psi(distribution(reference), distribution(counts))


def _novel_excess(reference: np.ndarray, counts: np.ndarray, novel: np.ndarray) -> np.ndarray:
    return share(counts, novel) - share(reference, novel)


def _missing_change(reference: np.ndarray, counts: np.ndarray, novel: np.ndarray) -> np.ndarray:
    return missing_rate(counts) - missing_rate(reference)


Statistic = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True, slots=True)
class Judged:
    """A statistic that severities are judged on: (reference probabilities, counts, novel bins) ->
    value, the channel kinds it applies to, its default effect-size thresholds and what it means."""

    name: str
    function: Statistic
    kinds: tuple[str, ...]
    threshold: Threshold
    meaning: str


# The one registry of judged statistics: the profile, the configuration schema, severities, metrics
# and the README read it. Out-of-range, unseen, out-of-vocabulary and wrong-prediction shares are one
# function: how much more of the live mass falls where the synthetic data had (almost) none.
# `descriptor` channels are the text descriptors but `length`, which is judged as `numeric`.
JUDGED: dict[str, Judged] = {j.name: j for j in (
    Judged("psi", _psi_of_counts, ("numeric", "descriptor", "categorical"), Threshold(0.1, 0.25),
           "population stability index of the live distribution against the synthetic one"),
    Judged("out_of_range_share", _novel_excess, ("numeric", "descriptor"), Threshold(0.01, 0.05),
           "share of live values outside the synthetic [min, max]"),
    Judged("unseen_share", _novel_excess, ("categorical",), Threshold(0.01, 0.05),
           "share of live values in categories the synthetic data never had"),
    Judged("oov_excess", _novel_excess, ("vocabulary",), Threshold(0.05, 0.15),
           "out-of-vocabulary share of live words above the synthetic (Good-Turing) expectation"),
    Judged("accuracy_gap", _novel_excess, ("performance",), Threshold(0.05, 0.1),
           "synthetic accuracy minus live accuracy"),
    Judged("missing_rate_change", _missing_change, ("numeric", "categorical"), Threshold(0.05, 0.2),
           "live missing rate minus synthetic missing rate (judged on its absolute value)"),
)}
DEFAULT_THRESHOLDS: dict[str, Threshold] = {name: judged.threshold for name, judged in JUDGED.items()}


def judged_for(kind: str) -> tuple[str, ...]:
    """The judged statistics of a channel kind, in registry order.

    >>> judged_for("categorical")
    ('psi', 'unseen_share', 'missing_rate_change')
    """
    return tuple(name for name, judged in JUDGED.items() if kind in judged.kinds)


def judged_name(statistic: str) -> str | None:
    """The judged statistic a reported name stands for, descriptor prefixes aside.

    >>> judged_name("psi"), judged_name("non_ascii_out_of_range_share"), judged_name("js")
    ('psi', 'out_of_range_share', None)
    """
    return next((name for name in JUDGED if statistic == name or statistic.endswith("_" + name)), None)
