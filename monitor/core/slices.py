"""Slice discovery: the conjunctions of two conditions (a segment value, a category, a numeric bin)
where live traffic departs most from the synthetic data, found on counts that merge like sketches.

Each row gets a code on every slice *axis* (the profile's segment fields, then categorical
features, the synthetic-likeness score and numeric features, while they fit `MAX_AXES` and
`MAX_CELLS`); a sketch keeps the joint counts of every pair of axes. A slice is reported when its
live share departs from its synthetic share by at least `MIN_SHARE` of traffic and beyond a
two-proportion z bound at the false-alarm rate divided by every cell tested (Bonferroni); a
two-condition slice only when it departs beyond what its two marginals explain (a drift of one
value alone is that value's slice, not every pair it is in).

Where rows are labelled, a sketch also keeps the right and wrong predictions of every cell, and a
slice is *weak* when its accuracy falls below the synthetic evaluation's in the same slice (or
overall, where the synthetic data had too few labels there) by `MIN_ACCURACY_GAP`, with Newcombe's
interval of the difference at the same Bonferroni bound above zero. A pair is weak only when
neither of its conditions is weak alone.

Written on the sketches, not with SliceLine or DivExplorer: both search a table of rows, while a
window here is merged counts from several workers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import combinations
from typing import Any

import numpy as np

from monitor.core import statistics
from monitor.core.channels import CategoryBins, Channel, Encoded, NumericBins, stream_of
from monitor.core.types import Group

MAX_AXES = 12  # 66 pairs
MAX_CELLS = 3000  # joint counts a sketch carries: every worker sends its sketches to the merger
MAX_VALUES = 20  # categories with a code of their own on an axis; the rest are "other"
MIN_SHARE = 0.02  # of traffic: smaller departures are not reported, however significant
MIN_ACCURACY_GAP = 0.05  # smaller falls of accuracy are not reported, however significant
MIN_LABELLED = 30  # labelled rows a slice needs for an accuracy of its own (live), or a reference one


@dataclass(frozen=True, slots=True)
class Axis:
    name: str
    labels: tuple[str, ...]
    channel: str | None = None  # None: a segment field
    fold: np.ndarray | None = None  # channel bin -> axis code

    @property
    def size(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, slots=True)
class Slice:
    conditions: tuple[tuple[str, str], ...]  # (axis, value)
    live_share: float
    synthetic_share: float
    expected_share: float  # what the marginals alone would give (the synthetic share, for one condition)
    events: int
    z: float  # of the share's departure from the expected share
    labelled: int = 0  # live rows with a label
    accuracy: float | None = None  # live, where labelled
    reference_accuracy: float | None = None  # the synthetic evaluation's, in this slice or overall
    accuracy_gap_low: float | None = None  # Newcombe's lower bound of reference minus live accuracy
    weak: bool = False  # accuracy below the reference's, beyond the bound
    departs: bool = True  # the share departs (else the slice is reported for being weak)

    @property
    def name(self) -> str:
        return " & ".join(f"{axis}={value}" for axis, value in self.conditions)

    @property
    def departure(self) -> float:
        """How far the slice is off, in points: its share's departure, or its accuracy's fall if weak."""
        fall = (self.reference_accuracy or 0.0) - (self.accuracy or 0.0) if self.weak else 0.0
        return max(abs(self.live_share - self.expected_share), fall)

    def to_json(self) -> dict[str, Any]:
        return {"slice": self.name, "conditions": [{"field": a, "value": v} for a, v in self.conditions],
                "live_share": self.live_share, "synthetic_share": self.synthetic_share,
                "expected_share": self.expected_share, "events": self.events, "z": self.z,
                "labelled": self.labelled, "accuracy": self.accuracy, "reference_accuracy": self.reference_accuracy,
                "accuracy_gap_low": self.accuracy_gap_low, "weak": self.weak, "departs": self.departs}


def slice_axes(channels: tuple[Channel, ...], groups: tuple[Group, ...]) -> tuple[Axis, ...]:
    """The axes: segment fields (their profiled values, then other), then categorical and numeric
    features (their bins, categories past `MAX_VALUES` folded into other), while they fit
    `MAX_AXES` and `MAX_CELLS` (an axis that does not fit is skipped)."""
    axes = []
    for field in dict.fromkeys(g.field for g in groups[1:]):
        values = tuple(g.value or "" for g in groups if g.field == field)
        axes.append(Axis(field or "", (*values, "(other)")))  # other: not profiled, or missing
    requests = [c for c in channels if stream_of(c) == "requests"]  # one event's own values, as the worker reads
    # Categories first, then how synthetic an event looks, then the numeric features.
    for channel in sorted(requests, key=lambda c: (not isinstance(c.bins, CategoryBins), c.likeness is None)):
        bins = channel.bins
        if isinstance(bins, NumericBins) and channel.descriptor is None:
            axes.append(Axis(channel.feature, (*bins.labels, "(missing)"), channel.name))
        elif isinstance(bins, CategoryBins):
            kept = bins.categories[:MAX_VALUES]
            other = len(kept)
            fold = np.array([*range(len(kept)), *[other] * (len(bins.categories) - len(kept)), other, other + 1,
                             other + 2])
            axes.append(Axis(channel.feature, (*kept, "(other)", "(unseen)", "(missing)"), channel.name, fold))
    chosen: list[Axis] = []
    for axis in axes:  # in order, while the pairs' cells fit
        if len(chosen) < MAX_AXES and cells((*chosen, axis)) <= MAX_CELLS:
            chosen.append(axis)
    return tuple(chosen)


def cells(axes: tuple[Axis, ...]) -> int:
    """The counts a sketch keeps: every axis's cells, then every pair's."""
    return sum(a.size for a in axes) + sum(a.size * b.size for a, b in combinations(axes, 2))


def codes(axes: tuple[Axis, ...], groups: tuple[Group, ...], group_codes: dict[str, np.ndarray],
          encoded: dict[str, Encoded], rows: int) -> np.ndarray | None:
    """Each row's code on every axis (axes x rows); None when a feature axis is not in this batch
    (a joined record: no features)."""
    result = np.empty((len(axes), rows), dtype=np.intp)
    for i, axis in enumerate(axes):
        if axis.channel is None:
            group = group_codes[axis.name]
            first = next(g for g, candidate in enumerate(groups) if candidate.field == axis.name)
            result[i] = np.where(group >= 0, group - first, axis.size - 1)
        else:
            if axis.channel not in encoded:
                return None
            index = encoded[axis.channel].index
            result[i] = axis.fold[index] if axis.fold is not None else index
    return result


def count(axes: tuple[Axis, ...], row_codes: np.ndarray) -> np.ndarray:
    """The counts of every axis's cells, then the joint counts of every pair of axes (in
    `combinations` order), one flat array, in one `bincount` over every row's cells."""
    first, second, sizes, offsets = _pairs(axes)
    starts = np.concatenate(([0], np.cumsum([a.size for a in axes])[:-1])).astype(np.intp)
    singles = starts[:, None] + row_codes
    pairs = offsets[:, None] + row_codes[first] * sizes[:, None] + row_codes[second]
    return np.bincount(np.concatenate((singles.ravel(), pairs.ravel())), minlength=cells(axes))


def count_outcomes(axes: tuple[Axis, ...], row_codes: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """The right and wrong predictions (outcome 0 and 1; 2: unknown) of every pair's cells: (2, cells)."""
    return np.stack([count(axes, row_codes[:, outcome == kind]) for kind in (0, 1)])


def _pairs(axes: tuple[Axis, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pair of axes: the first's and the second's position, the second's size, and where the
    pair's cells start in the flat counts (after every axis's own)."""
    pairs = list(combinations(range(len(axes)), 2))
    first = np.array([i for i, _ in pairs], dtype=np.intp)
    second = np.array([j for _, j in pairs], dtype=np.intp)
    sizes = np.array([axes[j].size for _, j in pairs], dtype=np.intp)
    widths = np.array([axes[i].size * axes[j].size for i, j in pairs], dtype=np.intp)
    starts = sum(a.size for a in axes) + np.concatenate(([0], np.cumsum(widths)[:-1]))
    return first, second, sizes, starts.astype(np.intp)


def find(axes: tuple[Axis, ...], reference: np.ndarray, live: np.ndarray, false_alarm_rate: float,
         reference_outcomes: np.ndarray | None = None, live_outcomes: np.ndarray | None = None,
         top: int = 10) -> list[Slice]:
    """The slices where live traffic departs most from the synthetic data, in its share or (with
    outcomes: right and wrong predictions per cell, see `count_outcomes`) in accuracy; largest
    departure first."""
    from scipy.special import ndtri

    if not len(reference) or len(reference) != len(live) or not live.any():
        return []
    live_outcomes, reference_outcomes = (o if o is not None and o.shape == (2, len(live))
                                         else np.zeros((2, len(live)), dtype=np.int64)
                                         for o in (live_outcomes, reference_outcomes))
    bound = float(ndtri(1 - false_alarm_rate / (2 * cells(axes))))
    found: dict[tuple[tuple[str, str], ...], Slice] = {}
    singles: list[_Cells | None] = []
    offset = 0
    for axis in axes:
        block = slice(offset, offset + axis.size)
        offset = block.stop
        singles.append(_cells(reference[block], live[block], bound, live_outcomes[:, block],
                              reference_outcomes[:, block]))
    pairs: dict[tuple[int, int], _Cells] = {}
    for (i, a), (j, b) in combinations(enumerate(axes), 2):
        block = slice(offset, offset + a.size * b.size)
        offset = block.stop
        pair = _cells(reference[block].reshape(a.size, b.size), live[block].reshape(a.size, b.size), bound,
                      *(o[:, block].reshape(2, a.size, b.size) for o in (live_outcomes, reference_outcomes)))
        if pair is not None:
            pairs[i, j] = pair
            for k in np.union1d(pair.departing(), pair.weak()):
                x, y = divmod(int(k), b.size)
                key: tuple[tuple[str, str], ...] = ((a.name, a.labels[x]), (b.name, b.labels[y]))
                found[key] = pair.slice(key, int(k))
    # Weak values, most excess wrong predictions first: a value that is not weak without the rows
    # of one already taken (on another axis) is explained by it, and not weak itself.
    weak_values = sorted((-single.excess(int(k)), i, int(k)) for i, single in enumerate(singles)
                         if single is not None for k in single.weak())
    taken: list[tuple[int, int]] = []
    for _, i, k in weak_values:
        if not any(j != i and not _weak_without(singles, pairs, (i, k), (j, m)) for j, m in taken):
            taken.append((i, k))
    for i, single in enumerate(singles):
        if single is not None:
            for k in np.union1d(single.departing(), single.weak()).tolist():
                key = ((axes[i].name, axes[i].labels[k]),)
                found[key] = replace(single.slice(key, k), weak=(i, k) in taken)
    return sorted((s for s in found.values() if s.weak or s.departs), key=lambda s: -s.departure)[:top]


def _weak_without(singles: list[_Cells | None], pairs: dict[tuple[int, int], _Cells], value: tuple[int, int],
                  other: tuple[int, int]) -> bool:
    """Whether a value (axis, code) is weak on the rows without another axis's value."""
    (i, k), (j, m) = value, other
    single, pair = singles[i], pairs.get((min(i, j), max(i, j)))
    if single is None or pair is None:  # no rows: nothing to take away
        return True
    cell = (slice(None), k, m) if i < j else (slice(None), m, k)
    live = single.live_outcomes[:, k] - pair.live_outcomes[cell]
    reference = single.reference_outcomes[:, k] - pair.reference_outcomes[cell]
    return bool(_weak(*_accuracy(live, reference, single.overall, single.bound)))


def _cells(reference: np.ndarray, live: np.ndarray, bound: float, live_outcomes: np.ndarray,
           reference_outcomes: np.ndarray) -> _Cells | None:
    """One axis's cells or one pair's (then 2-d), None where either side has no rows."""
    m, n = float(reference.sum()), float(live.sum())
    if not m or not n:
        return None
    return _Cells(reference / m, live / n, n, m, bound, live_outcomes.astype(np.float64),
                  reference_outcomes.astype(np.float64), expected=reference / m if reference.ndim == 1 else None)


class _Cells:
    """The cells of one pair of axes (or one axis's marginal), flat: synthetic and live shares,
    the share marginals alone would give, and right and wrong predictions, live and synthetic."""

    def __init__(self, p: np.ndarray, q: np.ndarray, n: float, m: float, bound: float,
                 live_outcomes: np.ndarray, reference_outcomes: np.ndarray, expected: np.ndarray | None = None) -> None:
        self.p, self.q, self.n, self.m, self.bound = p, q, n, m, bound
        self.live_outcomes, self.reference_outcomes = live_outcomes, reference_outcomes
        if expected is None:
            with np.errstate(invalid="ignore", divide="ignore"):
                scale_a = np.where(p.sum(1) > 0, q.sum(1) / p.sum(1), 0.0)
                scale_b = np.where(p.sum(0) > 0, q.sum(0) / p.sum(0), 0.0)
            expected = p * scale_a[:, None] * scale_b[None, :]
            # A condition the synthetic data never had explains every pair it is in: its own slice says it.
            unexplained = (p.sum(1) > 0)[:, None] & (p.sum(0) > 0)[None, :]
            expected = np.where(unexplained, expected, q)
        self.expected = expected

    def departing(self) -> np.ndarray:
        """Cells whose live share departs from the expected one by `MIN_SHARE` and beyond the z bound."""
        p, q, expected = self.p.ravel(), self.q.ravel(), self.expected.ravel()
        spread = _spread(p, q, self.n, self.m)
        return np.flatnonzero((np.abs(q - expected) >= MIN_SHARE) & (np.abs(q - expected) > self.bound * spread))

    @property
    def overall(self) -> np.ndarray:
        """The reference's right and wrong predictions in all."""
        return self.reference_outcomes.reshape(2, -1).sum(1)

    def weak(self) -> np.ndarray:
        """Cells whose accuracy falls below the reference's by `MIN_ACCURACY_GAP`, beyond the bound;
        and by that much more than the rest it is compared with falls: for one value, the rest of
        traffic (else the whole model fell); for a pair, the rest of each of its two conditions
        (else they explain it)."""
        return np.flatnonzero(self._weak_mask())

    def excess(self, k: int) -> float:
        """The wrong predictions of cell `k` beyond what the reference's accuracy would make."""
        gap, _, labelled, _ = self._accuracy()
        return float(gap[k] * labelled[k])

    def _weak_mask(self) -> np.ndarray:
        if not self.live_outcomes.any():  # no labels: no accuracy to fall
            return np.zeros(self.live_outcomes[0].size, dtype=bool)
        weak = _weak(*self._accuracy())
        if not weak.any():  # nothing the comparisons below could leave weak
            return weak
        live, reference = self.live_outcomes, self.reference_outcomes
        if live.ndim == 2:
            return weak & _falls_beyond(live, reference, live.sum(1, keepdims=True) - live,
                                        reference.sum(1, keepdims=True) - reference, self.bound)
        for rest in (lambda o: o.sum(2, keepdims=True) - o, lambda o: o.sum(1, keepdims=True) - o):
            weak &= _falls_beyond(live, reference, rest(live), rest(reference), self.bound).ravel()
        return weak

    def _accuracy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return _accuracy(self.live_outcomes.reshape(2, -1), self.reference_outcomes.reshape(2, -1), self.overall,
                         self.bound)

    def slice(self, key: tuple[tuple[str, str], ...], k: int) -> Slice:
        p, q, expected = float(self.p.ravel()[k]), float(self.q.ravel()[k]), float(self.expected.ravel()[k])
        spread = float(_spread(np.array(p), np.array(q), self.n, self.m))
        gap, low, labelled, reference_accuracy = (float(v[k]) for v in self._accuracy())
        right = float(self.live_outcomes.reshape(2, -1)[0, k])
        return Slice(key, q, p, expected, int(round(q * self.n)), (q - expected) / spread, labelled=int(labelled),
                     accuracy=right / labelled if labelled else None,
                     reference_accuracy=None if np.isnan(reference_accuracy) else reference_accuracy,
                     accuracy_gap_low=None if np.isnan(low) else low, weak=bool(self._weak_mask()[k]),
                     departs=bool(k in self.departing()))


def _accuracy(live: np.ndarray, reference: np.ndarray, overall: np.ndarray,
              bound: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per cell, from right and wrong predictions (2, cells), live and reference: reference minus
    live accuracy with Newcombe's lower bound at `bound`, live labelled rows, and the reference's
    accuracy (in the cell where it has `MIN_LABELLED` labelled rows, else `overall`'s; NaN where it
    has no labels at all)."""
    right, wrong = live
    reference_right, reference_wrong = reference
    labelled, reference_labelled = right + wrong, reference_right + reference_wrong
    own = reference_labelled >= MIN_LABELLED
    reference_right = np.where(own, reference_right, overall[0])
    reference_labelled = np.where(own, reference_labelled, overall.sum())
    gap, low, _ = statistics.difference_interval(reference_right, reference_labelled, right, labelled, bound)
    with np.errstate(invalid="ignore", divide="ignore"):
        return gap, low, labelled, reference_right / reference_labelled


def _weak(gap: np.ndarray, low: np.ndarray, labelled: np.ndarray, *_: Any) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.asarray((labelled >= MIN_LABELLED) & (gap >= MIN_ACCURACY_GAP) & (low > 0))


def _spread(p: np.ndarray, q: np.ndarray, n: float, m: float) -> np.ndarray:
    """The standard error of a difference of two shares, pooled (never below one row's worth)."""
    pooled = (q * n + p * m) / (n + m)
    return np.sqrt(np.maximum(pooled * (1 - pooled), 1 / (n + m)) * (1 / n + 1 / m))


def _falls_beyond(live: np.ndarray, reference: np.ndarray, live_rest: np.ndarray, reference_rest: np.ndarray,
                  bound: float) -> np.ndarray:
    """Whether each cell's fall of accuracy (reference minus live) exceeds the fall of the rest it
    is compared with by `MIN_ACCURACY_GAP`, beyond the bound: a difference of differences (Wald)
    on right and wrong predictions, (2, ...). Where the reference has too few labels for a cell,
    both falls are from the reference's overall accuracy."""
    own = reference.sum(0) >= MIN_LABELLED
    overall = reference.reshape(2, -1).sum(1).reshape(2, *([1] * (reference.ndim - 1)))
    parts = (np.where(own, reference, overall), np.where(own, reference_rest, overall), live, live_rest)
    shares, variance = [], np.zeros(live.shape[1:])
    for part in parts:
        labelled = np.maximum(part.sum(0), 1)
        share = part[0] / labelled
        shares.append(share)
        variance = variance + share * (1 - share) / labelled
    reference_value, reference_rest_share, live_value, live_rest_share = shares
    excess = (reference_value - live_value) - (reference_rest_share - live_rest_share)
    return np.asarray((excess >= MIN_ACCURACY_GAP) & (excess > bound * np.sqrt(np.maximum(variance, 1e-12))))
