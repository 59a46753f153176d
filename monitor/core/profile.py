"""The synthetic training profile: what the synthetic world looked like, per feature and segment.

Built in two streaming passes over the training table, so memory is bounded by the chunk size,
the reservoir sample and the capped category and vocabulary counts:

1. row count, min/max per numeric quantity, category, segment, provenance and token counts, and
   a uniform reservoir sample (bottom-k on random keys);
2. with the bins fixed from pass 1 (quantile edges from the sample, exact min/max, top
   categories, vocabulary), a `Sketch` of the whole table: the reference every window is
   compared with. Segment values with enough rows get their own row of reference counts.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import orjson

from monitor.core import schemas, slices
from monitor.core.channels import (
    DESCRIPTORS,
    TOKEN,
    CategoryBins,
    Channel,
    NumericBins,
    PerformanceBins,
    VocabularyBins,
    feature_columns,
    feature_kinds,
    text_descriptors,
)
from monitor.core.columns import Columns, Reservoir, coerce, organic_only
from monitor.core.errors import UsageError
from monitor.core.likeness import FEATURE as LIKENESS
from monitor.core.likeness import Likeness
from monitor.core.sketch import Sketch, Sketcher
from monitor.core.spec import Spec
from monitor.core.statistics import judged_for
from monitor.core.tables import read_chunks, sha256, table_format
from monitor.core.types import Group

FORMAT = "synthdrift-profile"
VERSION = 1
CATEGORY_MASS = 0.99  # the categories with a bin of their own carry this share of the rows...
MIN_CATEGORIES = 50  # ... and are at least the 50 most frequent
TRACKED_VALUES = 100_000  # distinct categories or tokens counted per column before pruning


class ProfileError(UsageError, ValueError):
    """A profile that cannot be used; the message says what to fix, in one line."""


@dataclass(frozen=True, slots=True)
class ProfileSettings:
    top_categories: int = 200  # at most this many categories get a bin of their own (see `top_categories`)
    vocabulary_size: int = 20_000
    min_segment_rows: int = 200
    max_segment_values: int = 20
    sample_size: int = 5_000
    seed: int = 0


@dataclass(frozen=True)
class Profile:
    spec: Spec
    channels: tuple[Channel, ...]
    groups: tuple[Group, ...]
    reference: Sketch
    segment_values: dict[str, dict[str, int]]
    sample: Columns
    meta: dict[str, Any]

    @property
    def id(self) -> str:
        """Names this profile in alerts and metrics: model and input digest."""
        return f"{self.spec.model}@{self.meta['input']['sha256'][:12]}"

    def sketcher(self) -> Sketcher:
        return Sketcher(self.channels, self.groups, {k: set(v) for k, v in self.segment_values.items()},
                        self.spec.provenance_column)

    def reference_probabilities(self, channel: Channel, group: int) -> np.ndarray:
        """The synthetic distribution over all of a channel's bins (missing included).

        For vocabularies, the chance that a fresh synthetic text holds a word the training texts
        never did is not zero: its Good-Turing estimate moves from the in-vocabulary bin to OOV.
        """
        counts = self.reference.counts[channel.name][group].astype(np.float64)
        total = counts.sum()
        probabilities = counts / total if total else counts
        if isinstance(channel.bins, VocabularyBins) and total:
            moved = min(channel.bins.unseen_rate, probabilities[0])
            probabilities = probabilities + np.array([-moved, moved, 0.0])
        return probabilities

    def to_json(self) -> bytes:
        data = {
            **self.meta,
            "spec": self.spec.to_dict(),
            "groups": [{"field": g.field, "value": g.value} for g in self.groups],
            "segment_values": self.segment_values,
            "channels": [_channel_json(c) for c in self.channels],
            "reference": self.reference.to_json(),
            "sample": {name: values.tolist() for name, values in self.sample.items()},
        }
        return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        try:
            data = orjson.loads(Path(path).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ProfileError(f"{path}: cannot read the profile: {exc}") from None
        if problem := schemas.problem("profile", data):
            raise ProfileError(f"{path}: not a synthdrift profile: {problem}")
        if data["version"] != VERSION:
            raise ProfileError(f"{path}: profile version {data['version']} is not {VERSION}; rebuild it with "
                               "`synthdrift profile build`")
        spec = Spec.from_dict(data["spec"], source=f"{path} spec")
        channels = tuple(_channel_from_json(c) for c in data["channels"])
        groups = tuple(Group(g["field"], g["value"]) for g in data["groups"])
        reference = Sketch.from_json(data["reference"])
        for channel in channels:
            shape = reference.counts.get(channel.name, np.empty((0, 0))).shape
            if shape != (len(groups), channel.bins.size):
                raise ProfileError(f"{path}: reference counts of {channel.name!r} have shape {shape}, expected "
                                   f"{(len(groups), channel.bins.size)}; rebuild the profile")
        expected = slices.cells(slices.slice_axes(channels, groups))
        if reference.slices.shape != (expected,) or reference.slice_outcomes.shape != (2, expected):
            raise ProfileError(f"{path}: the reference has {len(reference.slices)} slice counts, expected {expected} "
                               "(made by another synthdrift version); rebuild the profile")
        meta = {k: data[k] for k in ("format", "version", "created_at", "input", "provenance_mix", "evaluation",
                                     "settings", "baseline_of") if k in data}
        return cls(spec, channels, groups, reference, data["segment_values"], coerce(data["sample"], spec), meta)


def _channel_json(channel: Channel) -> dict[str, Any]:
    data = {"name": channel.name, "feature": channel.feature, "kind": channel.kind, "column": channel.column,
            "descriptor": channel.descriptor, "second_column": channel.second_column,
            "judged": list(channel.judged), "bins": channel.bins.to_json()}
    return {**data, "likeness": channel.likeness.to_json()} if channel.likeness else data


def _channels_text(profile: Profile) -> bytes:
    return orjson.dumps([_channel_json(c) for c in profile.channels], option=orjson.OPT_SERIALIZE_NUMPY)


def _channel_from_json(data: dict[str, Any]) -> Channel:
    raw = data["bins"]
    bins: Any
    if "edges" in raw:
        bins = NumericBins(edges=np.asarray(raw["edges"], dtype=np.float64), tails=tuple(raw["tails"]))
    elif "categories" in raw:
        bins = CategoryBins(categories=tuple(raw["categories"]), known=frozenset(raw["known"]))
    elif "vocabulary" in raw:
        bins = VocabularyBins(vocabulary=frozenset(raw["vocabulary"]), unseen_rate=raw["unseen_rate"])
    else:
        bins = PerformanceBins()
    likeness = Likeness.from_json(data["likeness"]) if data.get("likeness") else None
    return Channel(name=data["name"], feature=data["feature"], kind=data["kind"], column=data["column"],
                   bins=bins, judged=tuple(data["judged"]), descriptor=data["descriptor"],
                   second_column=data["second_column"], likeness=likeness)


class _FirstPass:
    """Counts and samples what fixes the bins: ranges, categories, segments, vocabularies."""

    def __init__(self, spec: Spec, settings: ProfileSettings) -> None:
        self.spec = spec
        self.settings = settings
        self.rows = 0
        self.ranges: dict[str, list[float]] = {}
        self.values: dict[str, Counter[str]] = {}
        self.tokens: dict[str, Counter[str]] = {n: Counter() for n, k in spec.features.items() if k == "text"}
        self._reservoir = Reservoir(settings.sample_size, settings.seed)

    def add(self, chunk: Columns) -> None:
        self.rows += len(next(iter(chunk.values())))
        for name, values in self._numeric(chunk).items():
            present = values[~np.isnan(values)]
            if present.size:
                low, high = self.ranges.setdefault(name, [np.inf, -np.inf])
                self.ranges[name] = [min(low, float(present.min())), max(high, float(present.max()))]
        for name, values in chunk.items():
            if values.dtype == object and name not in self.tokens:
                _count(self.values.setdefault(name, Counter()), values)
        for name, counter in self.tokens.items():
            for text in chunk[name]:
                if text is not None:
                    counter.update(TOKEN.findall(text.lower()))
            if len(counter) > 2 * TRACKED_VALUES:
                self.tokens[name] = Counter(dict(counter.most_common(TRACKED_VALUES)))
        self._reservoir.add(chunk)

    def _numeric(self, chunk: Columns) -> dict[str, np.ndarray]:
        numeric = {name: values for name, values in chunk.items() if values.dtype.kind == "f"}
        for name in self.tokens:
            for descriptor, values in text_descriptors(chunk[name]).items():
                numeric[f"{name}.{descriptor}"] = values
        return numeric

    @property
    def sample(self) -> Columns:
        return self._reservoir.sample

    def channels(self) -> tuple[Channel, ...]:
        spec, numeric_sample = self.spec, self._numeric(self.sample)
        kinds, columns = feature_kinds(spec), feature_columns(spec)
        channels: list[Channel] = []
        for feature, kind in kinds.items():
            column = columns[feature]
            if kind == "numeric":
                channels.append(Channel(feature, feature, "numeric", column, self._numeric_bins(column, numeric_sample),
                                        judged_for("numeric")))
            elif kind in ("categorical", "boolean"):
                counts = self.values.get(column, Counter())
                top = top_categories(counts, self.settings.top_categories)
                bins = CategoryBins(categories=top, known=frozenset(counts))
                channels.append(Channel(feature, feature, "categorical", column, bins, judged_for("categorical")))
            elif kind == "text":
                for descriptor in DESCRIPTORS:
                    name = f"{feature}.{descriptor}"
                    judged = judged_for("numeric") if descriptor == "length" else judged_for("descriptor")
                    channels.append(Channel(name, feature, "numeric", column, self._numeric_bins(name, numeric_sample),
                                            judged, descriptor=descriptor))
                channels.append(Channel(f"{feature}.oov", feature, "vocabulary", column, self._vocabulary(feature),
                                        judged_for("vocabulary")))
            else:
                channels.append(Channel(feature, feature, "performance", column, PerformanceBins(),
                                        judged_for("performance"), second_column=spec.prediction_label))
        numeric = [name for name, kind in spec.features.items() if kind == "numeric"]
        if likeness := Likeness.fit(self.sample, numeric):
            distance = likeness.distance(self.sample)
            channels.append(Channel(LIKENESS, LIKENESS, "numeric", likeness.features[0],
                                    NumericBins.from_sample(distance, float(distance.min()), float(distance.max())),
                                    judged_for("numeric"), likeness=likeness))
        return tuple(channels)

    def _numeric_bins(self, name: str, sample: dict[str, np.ndarray]) -> NumericBins:
        low, high = self.ranges.get(name, [0.0, 0.0])
        return NumericBins.from_sample(sample[name], low, high)

    def _vocabulary(self, feature: str) -> VocabularyBins:
        counts = self.tokens[feature]
        kept = counts.most_common(self.settings.vocabulary_size)
        total = sum(counts.values())
        singletons = sum(1 for _, c in kept if c == 1)  # Good-Turing: P(next token is new) ~ N1 / N
        return VocabularyBins(vocabulary=frozenset(w for w, _ in kept),
                              unseen_rate=singletons / total if total else 0.0)

    def groups(self) -> tuple[Group, ...]:
        groups = [Group()]
        for name in self.spec.segment_fields:
            frequent = self.values.get(name, Counter()).most_common(self.settings.max_segment_values)
            groups += [Group(name, value) for value, rows in frequent if rows >= self.settings.min_segment_rows]
        return tuple(groups)


def top_categories(counts: Counter[str], most: int) -> tuple[str, ...]:
    """The categories with a bin of their own: the most frequent, until they carry `CATEGORY_MASS`
    of the rows (and at least `MIN_CATEGORIES` of them), at most `most`. The rest share the bin
    `(other)`: a 105-value column read with its top 50 only lost a fifth of its PSI.

    >>> top_categories(Counter({f"v{i}": 100 - i for i in range(100)}), most=200)[-1]
    'v90'
    >>> len(top_categories(Counter({f"v{i}": 1 for i in range(1000)}), most=200))
    200
    """
    total, covered, chosen = sum(counts.values()), 0, list[str]()
    for value, count in counts.most_common(most):
        if len(chosen) >= MIN_CATEGORIES and covered >= CATEGORY_MASS * total:
            break
        chosen.append(value)
        covered += count
    return tuple(chosen)


def _count(counter: Counter[str], values: np.ndarray) -> None:
    present = values[values != None]  # noqa: E711
    if present.size:
        distinct, counts = np.unique(present.astype(str), return_counts=True)
        counter.update(dict(zip(distinct.tolist(), counts.tolist(), strict=True)))
    if len(counter) > 2 * TRACKED_VALUES:
        kept = counter.most_common(TRACKED_VALUES)
        counter.clear()
        counter.update(dict(kept))


def build(spec: Spec, path: str | Path, settings: ProfileSettings = ProfileSettings(),
          progress: Callable[[int, int], None] | None = None) -> Profile:
    """Profiles the training table at `path`; `progress(pass_number, rows_so_far)` is told as it goes."""
    first = _FirstPass(spec, settings)
    for chunk in read_chunks(path, spec):
        first.add(chunk)
        if progress:
            progress(1, first.rows)
    if not first.rows:
        raise ProfileError(f"{path}: the training table has no rows")
    channels, groups = first.channels(), first.groups()
    segment_values = {name: dict(first.values.get(name, Counter()).most_common(TRACKED_VALUES))
                      for name in spec.segment_fields}
    sketcher = Sketcher(channels, groups, {k: set(v) for k, v in segment_values.items()})
    reference = sketcher.empty()
    evaluation = _Evaluation(spec)
    rows = 0
    for chunk in read_chunks(path, spec):
        sketcher.update(reference, chunk)
        evaluation.add(chunk)
        rows += len(next(iter(chunk.values())))
        if progress:
            progress(2, rows)
    reference.gaps.clear()  # gaps are for live traffic; the reference has none by definition
    meta = {"format": FORMAT, "version": VERSION, **_table_meta(path, first, evaluation),
            "settings": {k: getattr(settings, k) for k in settings.__dataclass_fields__}}
    return Profile(spec, channels, groups, reference, segment_values, first.sample, meta)


def _table_meta(path: str | Path, first: _FirstPass, evaluation: _Evaluation) -> dict[str, Any]:
    """What a profile records of the table it was made from."""
    provenance = first.values.get(first.spec.provenance or "", Counter())
    return {"created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "input": {"path": Path(path).name, "format": table_format(Path(path)), "sha256": sha256(path),
                      "rows": first.rows},
            "provenance_mix": {k: v / first.rows for k, v in provenance.most_common()},
            "evaluation": evaluation.summary()}


def baseline(synthetic: Profile, path: str | Path) -> Profile:
    """An organic baseline: the synthetic profile's bins, groups and segment values, with reference
    counts, reservoir sample and evaluation taken from the organic rows of a table (rows whose
    provenance is another are left out). Drift is judged against it, the reality gap against the
    synthetic profile: with the same bins, one sketch of a live window serves both."""
    spec = synthetic.spec
    first = _FirstPass(spec, ProfileSettings(**synthetic.meta["settings"]))
    sketcher = synthetic.sketcher()
    reference = sketcher.empty()
    evaluation = _Evaluation(spec)
    for chunk in read_chunks(path, spec):
        chunk = organic_only(chunk, spec.provenance_column)
        if not len(next(iter(chunk.values()))):
            continue
        first.add(chunk)  # for its reservoir sample and provenance counts
        sketcher.update(reference, chunk)
        evaluation.add(chunk)
    if not first.rows:
        raise ProfileError(f"{path}: the organic table has no organic rows")
    reference.gaps.clear()
    meta = {**synthetic.meta, **_table_meta(path, first, evaluation), "baseline_of": synthetic.id}
    return Profile(spec, synthetic.channels, synthetic.groups, reference, synthetic.segment_values, first.sample,
                   meta)


def taken_baseline(synthetic: Profile, traffic: Sketch) -> Profile:
    """An organic baseline that the worker took from its first windows of traffic: their merged
    sketch, in the synthetic profile's bins, and no rows (its detectors are seeded from its bins)."""
    meta = {**synthetic.meta, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "input": {"path": "worker", "format": "windows", "sha256": traffic.digest(),
                      "rows": traffic.organic_events},
            "provenance_mix": {}, "baseline_of": synthetic.id}
    reference = Sketch(traffic.organic_events, traffic.counts, traffic.sums, traffic.squares, {}, slices=traffic.slices,
                       slice_outcomes=traffic.slice_outcomes)
    empty = {name: values[:0] for name, values in synthetic.sample.items()}
    return Profile(synthetic.spec, synthetic.channels, synthetic.groups, reference, synthetic.segment_values,
                   empty, meta)


def check_baseline(synthetic: Profile, organic: Profile, path: str | Path) -> None:
    """Fails with one line unless `organic` is a baseline made from `synthetic`."""
    same_bins = _channels_text(organic) == _channels_text(synthetic)
    if organic.meta.get("baseline_of") != synthetic.id or not same_bins:
        raise ProfileError(f"{path}: not an organic baseline of profile {synthetic.id} (it is "
                           f"{organic.meta.get('baseline_of') or 'a profile of its own'}); make it with "
                           "`synthdrift profile baseline --profile <the synthetic profile>`")


class _Evaluation:
    """The synthetic evaluation: accuracy of the training table's predictions, by provenance."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.counts: Counter[tuple[str, bool]] = Counter()

    def add(self, chunk: Columns) -> None:
        spec = self.spec
        if not (spec.label and spec.prediction_label):
            return
        index = PerformanceBins.index(chunk[spec.label], chunk[spec.prediction_label])
        provenance = chunk[spec.provenance] if spec.provenance else np.full(len(index), None, dtype=object)
        for source, outcome in zip(provenance.tolist(), index.tolist(), strict=True):
            if outcome < 2:
                self.counts[(source or "all", outcome == 0)] += 1

    def summary(self) -> dict[str, Any] | None:
        if not self.counts:
            return None
        by_source: dict[str, dict[str, float]] = {}
        for source in sorted({s for s, _ in self.counts}):
            right, wrong = self.counts[(source, True)], self.counts[(source, False)]
            by_source[source] = {"accuracy": right / (right + wrong), "rows": right + wrong}
        right = sum(c for (_, ok), c in self.counts.items() if ok)
        rows = sum(self.counts.values())
        return {"accuracy": right / rows, "rows": rows, "by_provenance": by_source}


def summary(profile: Profile) -> str:
    """A readable account of a profile, for `synthdrift profile show`."""
    meta = profile.meta
    lines = [
        f"profile {profile.id}  (format v{meta['version']}, created {meta['created_at']})",
        f"input   {meta['input']['path']}  {meta['input']['rows']:,} rows  sha256 {meta['input']['sha256'][:16]}…",
    ]
    if meta["provenance_mix"]:
        lines.append("provenance  " + ", ".join(f"{k} {v:.1%}" for k, v in meta["provenance_mix"].items()))
    if meta["evaluation"]:
        evaluation = meta["evaluation"]
        lines.append(f"evaluation  accuracy {evaluation['accuracy']:.3f} on {evaluation['rows']:,} rows" + "".join(
            f"; {k} {v['accuracy']:.3f}" for k, v in evaluation["by_provenance"].items() if k != "all"))
    segments = [g.name for g in profile.groups[1:]]
    lines.append("segments    " + (", ".join(segments) if segments else "none"))
    lines.append("")
    lines.append(f"{'feature':28} {'kind':12} {'missing':>8}  summary")
    for channel in profile.channels:
        counts = profile.reference.counts[channel.name][0]
        total = counts.sum()
        missing = counts[-1] / total if total else 0.0
        lines.append(f"{channel.name:28} {channel.kind:12} {missing:8.1%}  {_describe(profile, channel, counts)}")
    return "\n".join(lines)


def _describe(profile: Profile, channel: Channel, counts: np.ndarray) -> str:
    bins = channel.bins
    if isinstance(bins, NumericBins):
        means, sds = profile.reference.moments(channel.name)
        mean, sd = means[0], sds[0]
        return f"mean {mean:.4g}  sd {sd:.4g}  range [{bins.edges[0]:.4g}, {bins.edges[-1]:.4g}]  " \
               f"{bins.interior} bins"
    if isinstance(bins, CategoryBins):
        n = max(counts[:-1].sum(), 1)
        top = ", ".join(f"{c} {counts[i] / n:.0%}" for i, c in enumerate(bins.categories[:5]))
        return f"{len(bins.known)} values: {top}{' …' if len(bins.categories) > 5 else ''}"
    if isinstance(bins, VocabularyBins):
        return f"vocabulary {len(bins.vocabulary):,} words; expected OOV share {bins.unseen_rate:.2%}"
    right, wrong = counts[0], counts[1]
    return f"accuracy {right / max(right + wrong, 1):.3f} on {right + wrong:,} labelled rows"
