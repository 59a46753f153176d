"""Slice discovery: the conjunctions of two conditions (a segment value, a category, a numeric bin)
where live traffic departs most from the synthetic data, found on counts that merge like sketches.

Each row gets a code on every slice *axis* (the profile's segment fields, then categorical
features, the synthetic-likeness score and numeric features, while they fit `MAX_AXES` and
`MAX_CELLS`); a sketch keeps the joint counts of every pair of axes. A slice is reported when its
live share departs from its synthetic share by at least `MIN_SHARE` of traffic and beyond a
two-proportion z bound at the false-alarm rate divided by every cell tested (Bonferroni); a
two-condition slice only when it departs beyond what its two marginals explain (a drift of one
value alone is that value's slice, not every pair it is in).

Written on the sketches, not with SliceLine or DivExplorer: both search a table of rows, while a
window here is merged counts from several workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from monitor.core.channels import CategoryBins, Channel, Encoded, NumericBins, stream_of
from monitor.core.types import Group

MAX_AXES = 12  # 66 pairs
MAX_CELLS = 3000  # joint counts a sketch carries: every worker sends its sketches to the merger
MAX_VALUES = 20  # categories with a code of their own on an axis; the rest are "other"
MIN_SHARE = 0.02  # of traffic: smaller departures are not reported, however significant


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
    z: float

    @property
    def name(self) -> str:
        return " & ".join(f"{axis}={value}" for axis, value in self.conditions)

    def to_json(self) -> dict[str, Any]:
        return {"slice": self.name, "conditions": [{"field": a, "value": v} for a, v in self.conditions],
                "live_share": self.live_share, "synthetic_share": self.synthetic_share,
                "expected_share": self.expected_share, "events": self.events, "z": self.z}


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
    return sum(a.size * b.size for a, b in combinations(axes, 2))


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
    """The joint counts of every pair of axes, one flat array (pairs in `combinations` order), in
    one `bincount` over every pair's cell of every row."""
    first, second, sizes, offsets = _pairs(axes)
    cells = offsets[:, None] + row_codes[first] * sizes[:, None] + row_codes[second]
    return np.bincount(cells.ravel(), minlength=sum(a.size * b.size for a, b in combinations(axes, 2)))


def _pairs(axes: tuple[Axis, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pair of axes: the first's and the second's position, the second's size, and where the
    pair's cells start in the flat counts."""
    pairs = list(combinations(range(len(axes)), 2))
    first = np.array([i for i, _ in pairs], dtype=np.intp)
    second = np.array([j for _, j in pairs], dtype=np.intp)
    sizes = np.array([axes[j].size for _, j in pairs], dtype=np.intp)
    widths = np.array([axes[i].size * axes[j].size for i, j in pairs], dtype=np.intp)
    return first, second, sizes, np.concatenate(([0], np.cumsum(widths)[:-1])).astype(np.intp)


def find(axes: tuple[Axis, ...], reference: np.ndarray, live: np.ndarray, false_alarm_rate: float,
         top: int = 10) -> list[Slice]:
    """The slices where live traffic departs most from the synthetic data, largest departure first."""
    from scipy.special import ndtri

    if not len(reference) or len(reference) != len(live) or not live.any():
        return []
    tests = sum(a.size for a in axes) + cells(axes)
    bound = float(ndtri(1 - false_alarm_rate / (2 * tests)))
    found: dict[tuple[tuple[str, str], ...], Slice] = {}
    offset = 0
    for a, b in combinations(axes, 2):
        size = a.size * b.size
        synthetic = reference[offset:offset + size].reshape(a.size, b.size).astype(np.float64)
        observed = live[offset:offset + size].reshape(a.size, b.size).astype(np.float64)
        offset += size
        m, n = synthetic.sum(), observed.sum()
        if not m or not n:
            continue
        p, q = synthetic / m, observed / n
        for axis, p_axis, q_axis in ((a, p.sum(1), q.sum(1)), (b, p.sum(0), q.sum(0))):
            for k in _departing(p_axis, q_axis, p_axis, n, m, bound):
                single: tuple[tuple[str, str], ...] = ((axis.name, axis.labels[k]),)
                found.setdefault(single, _slice(single, p_axis[k], q_axis[k], p_axis[k], n, m))
        with np.errstate(invalid="ignore", divide="ignore"):
            scale_a = np.where(p.sum(1) > 0, q.sum(1) / p.sum(1), 0.0)
            scale_b = np.where(p.sum(0) > 0, q.sum(0) / p.sum(0), 0.0)
        expected = p * scale_a[:, None] * scale_b[None, :]
        # A condition the synthetic data never had explains every pair it is in: its own slice says it.
        unexplained = (p.sum(1) > 0)[:, None] & (p.sum(0) > 0)[None, :]
        expected = np.where(unexplained, expected, q)
        for k in _departing(p.ravel(), q.ravel(), expected.ravel(), n, m, bound):
            x, y = divmod(int(k), b.size)
            key = ((a.name, a.labels[x]), (b.name, b.labels[y]))
            found[key] = _slice(key, p[x, y], q[x, y], expected[x, y], n, m)
    ranked = sorted(found.values(), key=lambda s: -abs(s.live_share - s.expected_share))
    return ranked[:top]


def _departing(p: np.ndarray, q: np.ndarray, expected: np.ndarray, n: float, m: float, bound: float) -> np.ndarray:
    """Cells whose live share departs from `expected` by `MIN_SHARE` and beyond the z bound."""
    pooled = (q * n + p * m) / (n + m)
    spread = np.sqrt(np.maximum(pooled * (1 - pooled), 1 / (n + m)) * (1 / n + 1 / m))
    return np.flatnonzero((np.abs(q - expected) >= MIN_SHARE) & (np.abs(q - expected) > bound * spread))


def _slice(key: tuple[tuple[str, str], ...], p: float, q: float, expected: float, n: float, m: float) -> Slice:
    pooled = (q * n + p * m) / (n + m)
    spread = float(np.sqrt(max(pooled * (1 - pooled), 1 / (n + m)) * (1 / n + 1 / m)))
    return Slice(key, float(q), float(p), float(expected), int(round(q * n)), float((q - expected) / spread))
