"""Channels: every monitored quantity as counts over a fixed set of bins.

A feature becomes one or more channels: a numeric feature one, binned on the synthetic quantiles;
a categorical feature one, binned on its synthetic categories; a text feature one per descriptor
(length, tokens, non-ASCII, digit and uppercase shares) plus one for its vocabulary. Every channel
ends with a `missing` bin, so a window is just an integer array per channel, and windows add up.

Bins where the synthetic data has no mass (values outside the synthetic range, categories the
generator never produced, words outside its vocabulary, wrong predictions) are the channel's
*novel* bins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from monitor.core.columns import Columns, label_codes
from monitor.core.likeness import Likeness
from monitor.core.search import SortedSearch
from monitor.core.spec import Spec

ChannelKind = Literal["numeric", "categorical", "vocabulary", "performance"]
DESCRIPTORS = ("length", "tokens", "non_ascii", "digits", "uppercase")
QUANTILE_LEVELS = (0.005, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.995)
TOKEN = re.compile(r"\w+")
_DIGITS = str.maketrans("", "", "0123456789")


@dataclass(frozen=True, slots=True)
class Encoded:
    """One batch of a channel: the bin of each element; `owner` maps tokens back to their event."""

    index: np.ndarray
    values: np.ndarray | None = None
    owner: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class NumericBins:
    """Bins: below the synthetic min, the quantile bins between min and max, above max, missing.

    >>> bins = NumericBins(edges=np.array([0.0, 1.0, 2.0]), tails=(0.0, 2.0))
    >>> bins.index(np.array([-1.0, 0.0, 0.5, 2.0, 3.0, np.inf, np.nan])).tolist()
    [0, 1, 1, 2, 3, 3, 4]
    """

    edges: np.ndarray
    tails: tuple[float, float]
    _search: SortedSearch = field(init=False, repr=False, compare=False)
    _table: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_search", SortedSearch(self.bounds))
        object.__setattr__(self, "_table", self.table(self._search))

    @property
    def interior(self) -> int:
        return max(len(self.edges) - 1, 1)

    @property
    def size(self) -> int:
        return self.interior + 3

    @property
    def bounds(self) -> np.ndarray:
        """The lower edges of the interior bins, then the least float above max: a value's bin is
        the count of bounds at or below it."""
        return np.append(self.edges[:self.interior], np.nextafter(self.edges[-1], np.inf))

    def table(self, search: SortedSearch) -> np.ndarray:
        """The bin of each key of `search`, whose edges include the bounds."""
        table = search.table(self.bounds, "right")
        table[-1] = self.interior + 2  # NaN: missing, after the values above max
        return table

    def index(self, values: np.ndarray) -> np.ndarray:
        return self._table[self._search.keys(values)]

    @property
    def novel(self) -> np.ndarray:
        mask = np.zeros(self.size, dtype=bool)
        mask[[0, self.interior + 1]] = True
        return mask

    @property
    def tail(self) -> np.ndarray:
        """Bins outside the synthetic [0.5%, 99.5%] quantiles: tails the generator rarely produced."""
        lower, upper = (self.edges[:-1], self.edges[1:]) if len(self.edges) > 1 else (self.edges, self.edges)
        inner = (upper <= self.tails[0]) | (lower >= self.tails[1])
        return np.concatenate(([True], inner, [True, False]))

    @property
    def labels(self) -> list[str]:
        """A readable name per bin, missing aside: `< min`, `[a, b)`, …, `> max`."""
        edges = [f"{e:.4g}" for e in self.edges]
        inner = [f"[{a}, {b})" for a, b in zip(edges[:-1], edges[1:], strict=True)] or [f"[{edges[0]}]"]
        inner[-1] = inner[-1][:-1] + "]"
        return [f"< {edges[0]}", *inner, f"> {edges[-1]}"]

    def to_json(self) -> dict[str, Any]:
        return {"edges": self.edges.tolist(), "tails": list(self.tails)}

    @classmethod
    def from_sample(cls, sample: np.ndarray, low: float, high: float) -> NumericBins:
        present = sample[~np.isnan(sample)]
        levels = np.quantile(present, QUANTILE_LEVELS) if present.size else np.array([low, high])
        edges = np.unique(np.concatenate(([low], levels, [high])))
        tails = (float(levels[0]), float(levels[-1])) if present.size else (low, high)
        return cls(edges=edges, tails=tails)


@dataclass(frozen=True, slots=True)
class CategoryBins:
    """Bins: the top synthetic categories, the other synthetic ones, unseen, missing."""

    categories: tuple[str, ...]
    known: frozenset[str]
    lookup: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lookup", {c: i for i, c in enumerate(self.categories)})

    @property
    def size(self) -> int:
        return len(self.categories) + 3

    def index(self, values: np.ndarray) -> np.ndarray:
        other, unseen = len(self.categories), len(self.categories) + 1
        return label_codes(values, lambda v: self.lookup.get(v, other if v in self.known else unseen), self.size - 1)[0]

    def unseen(self, values: np.ndarray, index: np.ndarray) -> np.ndarray:
        return values[index == len(self.categories) + 1]

    @property
    def novel(self) -> np.ndarray:
        mask = np.zeros(self.size, dtype=bool)
        mask[len(self.categories) + 1] = True
        return mask

    @property
    def labels(self) -> list[str]:
        return [*self.categories, "(other)", "(unseen)"]

    def to_json(self) -> dict[str, Any]:
        return {"categories": list(self.categories), "known": sorted(self.known)}


@dataclass(frozen=True, slots=True)
class VocabularyBins:
    """Bins over tokens: in the synthetic vocabulary, out of it, and an unused missing bin."""

    vocabulary: frozenset[str]
    unseen_rate: float = 0.0  # Good-Turing chance that a fresh synthetic token is out of vocabulary
    size: int = 3

    def index(self, texts: np.ndarray) -> Encoded:
        token_lists = [TOKEN.findall(t.lower()) if t is not None else () for t in texts]
        counts = np.fromiter((len(t) for t in token_lists), dtype=np.intp, count=len(token_lists))
        vocabulary = self.vocabulary
        index = np.fromiter((w not in vocabulary for tokens in token_lists for w in tokens),
                            dtype=np.intp, count=int(counts.sum()))
        return Encoded(index=index, owner=np.repeat(np.arange(len(texts)), counts))

    @property
    def novel(self) -> np.ndarray:
        return np.array([False, True, False])

    def to_json(self) -> dict[str, Any]:
        return {"vocabulary": sorted(self.vocabulary), "unseen_rate": self.unseen_rate}


@dataclass(frozen=True, slots=True)
class PerformanceBins:
    """Bins: prediction right, wrong, no ground truth yet."""

    size: int = 3

    @staticmethod
    def index(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        known = (labels != None) & (predictions != None)  # noqa: E711
        return np.where(known, (labels != predictions).astype(np.intp), 2)

    @property
    def novel(self) -> np.ndarray:
        return np.array([False, True, False])

    def to_json(self) -> dict[str, Any]:
        return {}


Bins = NumericBins | CategoryBins | VocabularyBins | PerformanceBins


@dataclass(frozen=True, slots=True)
class Channel:
    """A binned quantity of one feature, and the statistics it is judged on."""

    name: str
    feature: str
    kind: ChannelKind
    column: str
    bins: Bins
    judged: tuple[str, ...]
    descriptor: str | None = None
    second_column: str | None = None
    likeness: Likeness | None = None  # the synthetic-likeness channel's model (see `likeness`)

    def encode(self, columns: Columns, descriptors: dict[str, dict[str, np.ndarray]]) -> Encoded:
        """The batch's bins; `descriptors` caches text descriptors shared by a feature's channels."""
        bins = self.bins
        if self.likeness is not None and isinstance(bins, NumericBins):
            distance = self.likeness.distance(columns)
            return Encoded(index=bins.index(distance), values=distance)
        values = columns[self.column]
        if isinstance(bins, VocabularyBins):
            return bins.index(values)
        if isinstance(bins, PerformanceBins):
            return Encoded(index=bins.index(values, columns[self.second_column]))  # type: ignore[index]
        if isinstance(bins, CategoryBins):
            return Encoded(index=bins.index(values))
        if self.descriptor:
            if self.column not in descriptors:
                descriptors[self.column] = text_descriptors(values)
            values = descriptors[self.column][self.descriptor]
        return Encoded(index=bins.index(values), values=values)


class NumericEncoder:
    """The requests' plain numeric channels and the synthetic-likeness channel of a layout, encoded
    as `Channel.encode` does, from one search per feature: placing every value among its bin bounds
    and among its likeness knots is most of sketching's work, and one search over both, read
    through a table of each (`SortedSearch.table`), does it in half the passes."""

    def __init__(self, channels: tuple[Channel, ...]) -> None:
        binned = {c.column: (c.name, c.bins) for c in channels if isinstance(c.bins, NumericBins)
                  and c.likeness is None and c.descriptor is None and stream_of(c) == "requests"}
        # The likeness channel's name, model and bins.
        self.likeness = next(((c.name, c.likeness, c.bins) for c in channels
                              if c.likeness is not None and isinstance(c.bins, NumericBins)), None)
        rows = {feature: row for row, feature in enumerate(self.likeness[1].features)} if self.likeness else {}
        # Per feature: its search; its channel and the bin of each key; its row in the likeness
        # scores and the normal score of each key.
        Placed = tuple[str, SortedSearch, tuple[str, np.ndarray] | None, tuple[int, np.ndarray] | None]
        self._features: list[Placed] = []
        for feature in dict.fromkeys([*binned, *rows]):
            channel, row = binned.get(feature), rows.get(feature)
            edges = [channel[1].bounds] if channel else []
            if self.likeness and row is not None:
                edges.append(self.likeness[1].knots[row])
            search = SortedSearch(np.sort(np.concatenate(edges)))
            self._features.append((
                feature, search, (channel[0], channel[1].table(search)) if channel else None,
                (row, self.likeness[1].score_table(row, search)) if self.likeness and row is not None else None))

    def encode(self, columns: Columns) -> dict[str, Encoded]:
        """The channels whose columns are all in `columns`, by name."""
        likeness = self.likeness if self.likeness and all(f in columns for f in self.likeness[1].features) else None
        scores = np.empty((len(likeness[1].features), len(columns[likeness[1].features[0]]))) if likeness else None
        encoded = {}
        for feature, search, bins, normal in self._features:
            if feature in columns:
                keys = search.keys(columns[feature])
                if bins:
                    encoded[bins[0]] = Encoded(index=bins[1][keys], values=columns[feature])
                if normal and scores is not None:
                    scores[normal[0]] = normal[1][keys]
        if likeness:
            name, model, distance_bins = likeness
            distance = model.distance(columns, scores)
            encoded[name] = Encoded(index=distance_bins.index(distance), values=distance)
        return encoded


def text_descriptors(texts: np.ndarray) -> dict[str, np.ndarray]:
    """Per text: length in characters, token count, and non-ASCII, digit and uppercase shares.

    >>> described = text_descriptors(np.array(["Hi 42 ü", None], dtype=object))
    >>> {k: [round(x, 3) for x in v.tolist()] for k, v in described.items()}  # doctest: +NORMALIZE_WHITESPACE
    {'length': [7.0, nan], 'tokens': [3.0, nan], 'non_ascii': [0.143, nan], 'digits': [0.286, nan],
     'uppercase': [0.143, nan]}
    """
    rows = [_describe(t) if t is not None else (np.nan,) * 5 for t in texts]
    table = np.array(rows, dtype=np.float64).reshape(len(rows), 5)
    return {name: table[:, i] for i, name in enumerate(DESCRIPTORS)}


def _describe(text: str) -> tuple[float, float, float, float, float]:
    length = len(text)
    if not length:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    non_ascii = length - len(text.encode("ascii", "ignore"))
    digits = length - len(text.translate(_DIGITS))
    upper = sum(map(str.isupper, text))
    return float(length), float(len(TOKEN.findall(text))), non_ascii / length, digits / length, upper / length


def stream_of(channel: Channel) -> str:
    """Which stream a channel's values come from: requests, predictions or feedback."""
    if channel.kind == "performance":
        return "feedback"
    return "predictions" if channel.feature.startswith("prediction.") else "requests"


def feature_kinds(spec: Spec) -> dict[str, str]:
    """Every monitored feature and its kind, predictions and performance included."""
    kinds: dict[str, str] = dict(spec.features)
    if spec.prediction_label:
        kinds["prediction.label"] = "categorical"
    if spec.prediction_score:
        kinds["prediction.score"] = "numeric"
    if spec.label and spec.prediction_label:
        kinds["performance"] = "performance"
    return kinds


def feature_columns(spec: Spec) -> dict[str, str]:
    """The table column each monitored feature reads."""
    columns = {name: name for name in spec.features}
    if spec.prediction_label:
        columns["prediction.label"] = spec.prediction_label
    if spec.prediction_score:
        columns["prediction.score"] = spec.prediction_score
    if spec.label and spec.prediction_label:
        columns["performance"] = spec.label
    return columns
