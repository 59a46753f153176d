"""Mergeable window sketches: bin counts per channel and segment, plus coverage-gap counts.

A `Sketch` is plain arrays that add up: the sketch of two parts merged equals the sketch of their
union, so workers can sketch their own partitions and one merge gives the window. The synthetic
profile's reference is itself a sketch of the whole training set, made by the same `Sketcher`.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from monitor.core import slices
from monitor.core.channels import (
    CategoryBins,
    Channel,
    Encoded,
    NumericBins,
    NumericEncoder,
    PerformanceBins,
    stream_of,
)
from monitor.core.columns import ORGANIC, Columns, label_codes, organic_rows, take
from monitor.core.types import Group

MAX_GAP_VALUES = 100  # distinct unseen values tracked per field and window; the rest add up in OTHER
MAX_SOURCES = 10  # provenance values counted apart per window; the rest add up in OTHER
OTHER = "(other)"


def packed(value: Any) -> Any:
    """orjson's `default` for messages between workers: an array as its bytes (base64) in the
    smallest integer type that holds its values. Parsing long lists of numbers was most of the
    merger's cost of a partial, and counts are small integers (a bin of a block of 100 fits a byte).

    >>> packed(np.array([[0, 3], [255, 7]]))
    {'ndarray': ['|u1', [2, 2], 'AAP/Bw==']}
    >>> as_array(packed(np.array([[0, 3], [255, 7]])), np.int64).tolist()
    [[0, 3], [255, 7]]
    """
    if isinstance(value, np.generic):
        return value.item()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{type(value).__name__} is not serializable")
    if value.dtype.kind in "iu" and value.size:
        value = value.astype(np.promote_types(np.min_scalar_type(value.min()), np.min_scalar_type(value.max())))
    return {"ndarray": [value.dtype.str, list(value.shape), base64.b64encode(value.tobytes()).decode()]}


def as_array(value: Any, dtype: type[np.generic]) -> np.ndarray:
    """An array read from JSON: nested lists (a profile), or `packed` (a partial)."""
    if isinstance(value, dict):
        stored, shape, data = value["ndarray"]
        return np.frombuffer(base64.b64decode(data), np.dtype(stored)).astype(dtype).reshape(shape)
    return np.asarray(value, dtype=dtype)


@dataclass(slots=True)
class Sketch:
    """Counts (groups x bins) per channel; value sums per numeric bin; unseen values per field;
    per provenance, events and right and wrong predictions (see `Sketcher.split`); joint counts of
    slice cells, and right and wrong predictions per cell and per unseen segment value."""

    events: int
    counts: dict[str, np.ndarray]
    sums: dict[str, np.ndarray]
    squares: dict[str, np.ndarray]
    gaps: dict[str, dict[str, int]] = field(default_factory=dict)
    sources: dict[str, np.ndarray] = field(default_factory=dict)
    slices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # see `slices.count`
    slice_outcomes: np.ndarray = field(default_factory=lambda: np.zeros((2, 0), dtype=np.int64))  # right, wrong
    gap_outcomes: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # field -> value -> right, wrong

    def merge(self, other: Sketch) -> Sketch:
        """The sketch of both parts' events.

        >>> a = Sketch(1, {"x": np.array([[1, 0]])}, {}, {}, {"lang": {"es": 1}})
        >>> b = Sketch(2, {"x": np.array([[0, 2]])}, {}, {}, {"lang": {"es": 1, "pt": 1}})
        >>> merged = a.merge(b)
        >>> merged.events, merged.counts["x"].tolist(), merged.gaps
        (3, [[1, 2]], {'lang': {'es': 2, 'pt': 1}})
        """
        gaps = {f: dict(v) for f, v in self.gaps.items()}
        for name, values in other.gaps.items():
            _add_gaps(gaps.setdefault(name, {}), values)
        sources = dict(self.sources)
        _add_sources(sources, other.sources)
        gap_outcomes = {f: dict(v) for f, v in self.gap_outcomes.items()}
        for name, outcomes in other.gap_outcomes.items():
            _add_gap_outcomes(gap_outcomes.setdefault(name, {}), outcomes)
        same = self.slices.shape == other.slices.shape and self.slice_outcomes.shape == other.slice_outcomes.shape
        return Sketch(
            events=self.events + other.events,
            counts={k: v + other.counts[k] for k, v in self.counts.items()},
            sums={k: v + other.sums[k] for k, v in self.sums.items()},
            squares={k: v + other.squares[k] for k, v in self.squares.items()},
            gaps=gaps,
            sources=sources,
            slices=self.slices + other.slices if same else self.slices.copy(),
            slice_outcomes=self.slice_outcomes + other.slice_outcomes if same else self.slice_outcomes.copy(),
            gap_outcomes=gap_outcomes,
        )

    def copy(self) -> Sketch:
        return Sketch(self.events, {k: v.copy() for k, v in self.counts.items()},
                      {k: v.copy() for k, v in self.sums.items()}, {k: v.copy() for k, v in self.squares.items()},
                      {f: dict(v) for f, v in self.gaps.items()}, {k: v.copy() for k, v in self.sources.items()},
                      self.slices.copy(), self.slice_outcomes.copy(),
                      {f: {k: v.copy() for k, v in values.items()} for f, values in self.gap_outcomes.items()})

    def digest(self) -> str:
        """A short hash of the counts: equal sketches have equal digests."""
        hasher = hashlib.sha256(str(self.events).encode())
        for name in sorted(self.counts):
            hasher.update(name.encode() + self.counts[name].astype(np.int64).tobytes())
        for name in sorted(self.sources):
            hasher.update(name.encode() + self.sources[name].tobytes())
        return hasher.hexdigest()[:16]

    @property
    def organic_events(self) -> int:
        """The events that were sketched: organic ones (see `Sketcher.split`)."""
        return int(self.sources[ORGANIC][0]) if ORGANIC in self.sources else 0

    def moments(self, channel: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of a numeric channel per group (NaN where a group has none)."""
        n = self.counts[channel][:, :-1].sum(axis=1).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.sums[channel].sum(axis=1) / n
            variance = self.squares[channel].sum(axis=1) / n - mean * mean
        return mean, np.sqrt(np.maximum(variance, 0.0))

    def to_json(self) -> dict[str, Any]:
        """The sketch, its arrays as they are: dump with orjson's `OPT_SERIALIZE_NUMPY`."""
        return {"events": self.events, "counts": self.counts, "sums": self.sums, "squares": self.squares,
                "gaps": self.gaps, "sources": self.sources, "slices": self.slices,
                "slice_outcomes": self.slice_outcomes, "gap_outcomes": self.gap_outcomes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sketch:
        return cls(
            events=data["events"],
            counts={k: as_array(v, np.int64) for k, v in data["counts"].items()},
            sums={k: as_array(v, np.float64) for k, v in data["sums"].items()},
            squares={k: as_array(v, np.float64) for k, v in data["squares"].items()},
            gaps={k: dict(v) for k, v in data["gaps"].items()},
            sources={k: as_array(v, np.int64) for k, v in data.get("sources", {}).items()},
            slices=as_array(data.get("slices", []), np.int64),
            slice_outcomes=as_array(data.get("slice_outcomes", np.zeros((2, 0))), np.int64).reshape(2, -1),
            gap_outcomes={f: {k: as_array(v, np.int64) for k, v in values.items()}
                          for f, values in data.get("gap_outcomes", {}).items()},
        )


def _add_gaps(target: dict[str, int], values: dict[str, int]) -> None:
    _add_capped(target, values.items(), MAX_GAP_VALUES)


def _add_sources(target: dict[str, np.ndarray], counts: dict[str, np.ndarray]) -> None:
    _add_capped(target, sorted((k, v.copy()) for k, v in counts.items()), MAX_SOURCES)  # no array shared


def _add_gap_outcomes(target: dict[str, np.ndarray], outcomes: dict[str, np.ndarray]) -> None:
    _add_capped(target, sorted((k, v.copy()) for k, v in outcomes.items()), MAX_GAP_VALUES)


def _add_capped(target: dict[str, Any], values: Iterable[tuple[str, Any]], most: int) -> None:
    """Adds counts by key; past `most` distinct keys, new ones add up in OTHER."""
    for value, count in values:
        key = value if value in target or len(target) < most else OTHER
        target[key] = target[key] + count if key in target else count


class Sketcher:
    """Turns batches of columns into sketches on a fixed layout of channels and groups."""

    def __init__(self, channels: tuple[Channel, ...], groups: tuple[Group, ...],
                 segment_values: dict[str, set[str]], provenance: str = "") -> None:
        self.channels = channels
        self.groups = groups
        self.segment_values = segment_values  # every value the synthetic data had, per segment field
        self.provenance = provenance  # the column that names where a row came from
        self.axes = slices.slice_axes(channels, groups)
        self._performance = next((c for c in channels if isinstance(c.bins, PerformanceBins)), None)
        self._group_index = {(g.field, g.value): i for i, g in enumerate(groups)}
        self._segment_fields = tuple(segment_values)
        self._numeric = NumericEncoder(channels)

    def empty(self) -> Sketch:
        n = len(self.groups)
        counts = {c.name: np.zeros((n, c.bins.size), dtype=np.int64) for c in self.channels}
        numeric = [c for c in self.channels if isinstance(c.bins, NumericBins)]
        sums = {c.name: np.zeros((n, c.bins.size)) for c in numeric}
        cells = slices.cells(self.axes)
        return Sketch(0, counts, sums, {k: v.copy() for k, v in sums.items()},
                      slices=np.zeros(cells, dtype=np.int64), slice_outcomes=np.zeros((2, cells), dtype=np.int64))

    def sketch(self, columns: Columns) -> Sketch:
        """The sketch of one batch."""
        result = self.empty()
        self.update(result, columns)
        return result

    def split(self, sketch: Sketch, columns: Columns, events: bool = True) -> np.ndarray | None:
        """Counts a batch's rows by provenance in `sketch` (as events unless `events` is False, and
        as right or wrong predictions where labelled) and returns which rows are organic (None: all
        of them). Only organic rows are then sketched: they alone judge drift, and the rest are
        counted, not dropped.

        >>> sketcher = Sketcher((), (Group(),), {}, provenance="source")
        >>> sketch = sketcher.empty()
        >>> sketcher.split(sketch, {"source": np.array(["organic", "probe", None], dtype=object)}).tolist()
        [True, False, True]
        >>> {k: v.tolist() for k, v in sketch.sources.items()}
        {'organic': [2, 0, 0], 'probe': [1, 0, 0]}
        """
        provenance = columns.get(self.provenance)
        rows = len(next(iter(columns.values()))) if columns else 0
        if not rows:
            return None
        if provenance is not None and not any(provenance.tolist()):
            provenance = None  # none given: all organic, as most traffic is
        if provenance is None:  # all organic: no names to sort
            organic, distinct, source = np.ones(rows, dtype=bool), np.array([ORGANIC]), np.zeros(rows, dtype=np.intp)
        else:
            organic = organic_rows(provenance)
            distinct, source = np.unique(np.where(organic, ORGANIC, provenance).astype(str), return_inverse=True)
        counts = np.zeros((len(distinct), 3), dtype=np.int64)
        if events:
            counts[:, 0] = np.bincount(source, minlength=len(distinct))
        outcome = self._outcome(columns)
        if outcome is not None:
            known = outcome < 2
            np.add.at(counts, (source[known], 1 + outcome[known]), 1)
        _add_sources(sketch.sources, {name: counts[i] for i, name in enumerate(distinct.tolist()) if counts[i].any()})
        if organic.all():
            return None
        if events:
            sketch.events += int(rows - organic.sum())
        return organic

    def encode(self, columns: Columns, stream: str | None = None) -> dict[str, Encoded]:
        """The bins of every channel of `stream` (requests, predictions, feedback; None: all).

        Each stream's batches add to their own channels and leave the others alone.
        """
        descriptors: dict[str, dict[str, np.ndarray]] = {}
        numeric = self._numeric.encode(columns) if stream in (None, "requests") else {}
        return {c.name: numeric[c.name] if c.name in numeric else c.encode(columns, descriptors) for c in self.channels
                if stream is None or stream_of(c) == stream}

    def update(self, sketch: Sketch, columns: Columns, encoded: dict[str, Encoded] | None = None,
               events: bool = True, stream: str | None = None) -> None:
        """Adds a batch of columns (all of one length) to `sketch`, in place. `encoded`, when given,
        is `self.encode(columns)` already computed. With `events=False` the rows are records joined
        to events counted elsewhere: they add to their channels, not to the event count or gaps."""
        rows = len(next(iter(columns.values()))) if columns else 0
        if not rows:
            return
        if events:
            sketch.events += rows
        codes = self._group_codes(columns, sketch.gaps if events else {})
        combination, member = _combinations(codes, rows, len(self.groups))
        counted = member.astype(np.int64)
        encoded = encoded or self.encode(columns, stream)
        self._count_slices(sketch, columns, dict(zip(self._segment_fields, codes, strict=True)), encoded, events)
        for channel in self.channels:
            if channel.name not in encoded:
                continue
            encoded_channel = encoded[channel.name]
            size = channel.bins.size
            cells = member.shape[1] * size
            flat = (combination if encoded_channel.owner is None else combination[encoded_channel.owner]) * size
            flat += encoded_channel.index
            sketch.counts[channel.name] += counted @ np.bincount(flat, minlength=cells).reshape(-1, size)
            if encoded_channel.values is not None:
                weights = np.where(np.isnan(encoded_channel.values), 0.0, encoded_channel.values)
                sketch.sums[channel.name] += member @ np.bincount(flat, weights, cells).reshape(-1, size)
                sketch.squares[channel.name] += member @ np.bincount(flat, weights * weights, cells).reshape(-1, size)
            if isinstance(channel.bins, CategoryBins):
                unseen = channel.bins.unseen(columns[channel.column], encoded_channel.index)
                if unseen.size:
                    _add_gaps(sketch.gaps.setdefault(channel.feature, {}), _value_counts(unseen.tolist()))

    def _outcome(self, columns: Columns) -> np.ndarray | None:
        """Each row's prediction: 0 right, 1 wrong, 2 unknown (no label or prediction); None
        without a performance channel."""
        performance = self._performance
        if performance is None or performance.column not in columns:
            return None
        return PerformanceBins.index(columns[performance.column], columns[performance.second_column])  # type: ignore[index]

    def _count_slices(self, sketch: Sketch, columns: Columns, group_codes: dict[str, np.ndarray],
                      encoded: dict[str, Encoded], events: bool) -> None:
        """The slice counts of events, and the right and wrong predictions of labelled rows per
        slice cell and per unseen segment value. A joined record is labelled and not an event: it
        carries its request's features, whose channels are binned here for its labelled rows."""
        rows = len(next(iter(columns.values())))
        row_codes = slices.codes(self.axes, self.groups, group_codes, encoded, rows) if events else None
        if row_codes is not None and len(sketch.slices):
            sketch.slices += slices.count(self.axes, row_codes)
        outcome = self._outcome(columns)
        if outcome is None or not (known := outcome < 2).any():
            return
        if row_codes is None:
            labelled = take(columns, known)
            group_codes = {f: c[known] for f, c in group_codes.items()}
            row_codes = slices.codes(self.axes, self.groups, group_codes, self.encode(labelled, "requests"),
                                     int(known.sum()))
            columns, outcome = labelled, outcome[known]
        if row_codes is not None and len(sketch.slices):
            sketch.slice_outcomes += slices.count_outcomes(self.axes, row_codes, outcome)
        for name, code in group_codes.items():
            if name not in columns:  # a stream without segments
                continue
            counts: dict[str, np.ndarray] = {}
            for row in np.flatnonzero((code < 0) & (outcome < 2)).tolist():
                value = columns[name][row]
                if value is not None and str(value) not in self.segment_values[name]:
                    counts.setdefault(str(value), np.zeros(2, dtype=np.int64))[outcome[row]] += 1
            if counts:
                _add_gap_outcomes(sketch.gap_outcomes.setdefault(name, {}), counts)

    def _group_codes(self, columns: Columns, gaps: dict[str, dict[str, int]]) -> list[np.ndarray]:
        """Per segment field, each row's group index (-1: not a profiled value); records gaps."""
        rows = len(next(iter(columns.values())))
        return [self._field_codes(name, columns[name], gaps) if name in columns else np.full(rows, -1, dtype=np.intp)
                for name in self._segment_fields]  # a stream without segments adds to all traffic only

    def _field_codes(self, name: str, values: np.ndarray, gaps: dict[str, dict[str, int]]) -> np.ndarray:
        codes, distinct = label_codes(values, lambda v: self._group_index.get((name, v), -1), -1)
        known = self.segment_values[name]
        if new := {v for v in distinct if v is not None and str(v) not in known}:
            _add_gaps(gaps.setdefault(name, {}), _value_counts(v for v in values.tolist() if v in new))
        return codes


def _combinations(codes: list[np.ndarray], rows: int, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's combination of segment groups, numbered among the batch's distinct combinations,
    and the (groups x combinations) 0/1 matrix of the groups each combination belongs to (all
    traffic: every one). Binned once per combination, a channel's counts per group are then one
    small product, instead of one pass over the rows per segment field.

    >>> combination, member = _combinations([np.array([1, 2, 1, -1])], 4, 3)
    >>> combination.tolist(), member.tolist()
    ([1, 2, 1, 0], [[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    """
    combination = np.zeros(rows, dtype=np.intp)
    for code in codes:  # renumbered field by field, so the numbers stay small however many fields
        combination = np.unique(combination * (n_groups + 1) + code + 1, return_inverse=True)[1].reshape(-1)
    first = np.unique(combination, return_index=True)[1]
    member = np.zeros((n_groups, len(first)))
    member[0] = 1.0
    for code in codes:
        group = code[first]
        present = np.flatnonzero(group >= 0)
        member[group[present], present] = 1.0
    return combination, member


def _value_counts(values: Iterable[Any]) -> dict[str, int]:
    """How often each value occurs, by its text, sorted: past `MAX_GAP_VALUES`, which values keep
    their own count does not depend on their order within a batch."""
    return dict(sorted(Counter(map(str, values)).items()))
