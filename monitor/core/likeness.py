"""Synthetic-likeness: how typical an event's numeric features are *together* of the synthetic data.

Each numeric feature becomes a normal score through its synthetic quantiles (a Gaussian copula,
as synthesizers themselves model tables), and the event's score is its Mahalanobis distance under
the synthetic correlation of those scores: near the synthetic mass, small; in a combination the
generator never made, large, even when every feature alone looks synthetic (a broken
correlation). The score is a numeric channel like any other (binned on the synthetic scores,
judged, sliced), so its drift is a multivariate drift statistic.

A fixed model fitted on the profile's reservoir sample, not an online classifier trained on live
traffic: every worker and `check` then score an event identically, and windows merge exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import numpy as np

from monitor.core.columns import Columns
from monitor.core.search import SortedSearch

FEATURE = "synthetic_likeness"
KNOTS = 101  # quantiles kept per feature
RIDGE = 0.01  # added to the correlation's diagonal: a stable inverse for nearly collinear features


@lru_cache(maxsize=1)
def _scores() -> np.ndarray:
    """The normal score of every rank sum (left plus right position among the knots) a value can get."""
    from scipy.special import ndtri

    return np.asarray(ndtri(np.clip(np.arange(2 * KNOTS + 1) / (2 * KNOTS), 0.5 / KNOTS, 1 - 0.5 / KNOTS)))


@dataclass(frozen=True)
class Likeness:
    features: tuple[str, ...]
    knots: np.ndarray  # features x KNOTS synthetic quantiles
    precision: np.ndarray  # inverse of the (ridged) correlation of the normal scores

    @classmethod
    def fit(cls, sample: Columns, features: list[str]) -> Likeness | None:
        """The model of a sample's numeric features; None with fewer than two (nothing joint)."""
        usable = [f for f in features if np.isfinite(sample[f]).sum() >= KNOTS]
        if len(usable) < 2:
            return None
        levels = np.linspace(0, 1, KNOTS)
        knots = np.array([np.quantile(sample[f][np.isfinite(sample[f])], levels) for f in usable])
        model = cls(tuple(usable), knots, np.eye(len(usable)))
        scores = model._normal_scores(sample)
        correlation = np.corrcoef(scores) + RIDGE * np.eye(len(usable))
        return cls(model.features, knots, np.linalg.inv(correlation))

    def _normal_scores(self, columns: Columns) -> np.ndarray:
        """Each value's normal score through its synthetic quantiles (see `score_table`): features x rows."""
        scores = np.empty((len(self.features), len(columns[self.features[0]])))
        for i, (feature, search) in enumerate(zip(self.features, self._searches, strict=True)):
            scores[i] = self._tables[i][search.keys(columns[feature])]
        return scores

    def score_table(self, feature: int, search: SortedSearch) -> np.ndarray:
        """The normal score of each key of `search` (whose edges include the feature's knots): its
        rank among the synthetic quantiles, where ties (a spike at one value) take the middle of
        their range; missing values (NaN) the median."""
        knots = self.knots[feature]
        table = _scores()[search.table(knots, "left") + search.table(knots, "right")]
        table[-1] = 0.0
        return table

    @cached_property
    def _searches(self) -> list[SortedSearch]:
        return [SortedSearch(knots) for knots in self.knots]

    @cached_property
    def _tables(self) -> list[np.ndarray]:
        return [self.score_table(i, search) for i, search in enumerate(self._searches)]

    def distance(self, columns: Columns, scores: np.ndarray | None = None) -> np.ndarray:
        """Each row's squared Mahalanobis distance from the synthetic mass, per feature (the
        synthetic rows' own distances are the channel's reference: the scale does not matter);
        `scores`: the rows' normal scores (features x rows), when already read (see
        `channels.NumericEncoder`).

        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=2000)
        >>> model = Likeness.fit({"a": x, "b": x + 0.1 * rng.normal(size=2000)}, ["a", "b"])
        >>> together = model.distance({"a": np.array([1.0]), "b": np.array([1.0])})
        >>> apart = model.distance({"a": np.array([1.0]), "b": np.array([-1.0])})
        >>> bool(together[0] < 2 < 10 < apart[0])
        True
        """
        scores = self._normal_scores(columns) if scores is None else scores
        # Rounded: BLAS sums in another order for another batch size, and discrete features put
        # bin edges exactly on common distances, so the last bit would move rows across an edge
        # (the worker's small batches and `check`'s large ones must bin an event alike). Features
        # by rows: the sum over features adds whole rows, many times faster than along each row.
        return np.round(((self.precision.T @ scores) * scores).sum(axis=0) / len(self.features), 9)

    def to_json(self) -> dict[str, Any]:
        return {"features": list(self.features), "knots": self.knots, "precision": self.precision}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Likeness:
        return cls(tuple(data["features"]), np.asarray(data["knots"], dtype=np.float64),
                   np.asarray(data["precision"], dtype=np.float64))
