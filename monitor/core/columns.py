"""Columns: a batch of rows as one NumPy array per field, the shape every later step works on.

Numeric fields become float64 with NaN for missing; every other field becomes an object array of
`str` or `None`, so that `3`, `"3"` and `3.0` from JSON, CSV and Parquet are the same category.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from monitor.core.language import identify
from monitor.core.spec import Spec, language_field

Columns = dict[str, np.ndarray]
ORGANIC = "organic"  # the provenance of real traffic; an event that names none is organic too


def to_numeric(values: Sequence[Any]) -> np.ndarray:
    """Float64 array; None, "" and unparsable strings become NaN, booleans 0 and 1."""
    try:
        return np.array(values, dtype=np.float64)  # the common case: numbers and None
    except (TypeError, ValueError):
        return np.fromiter((_number(v) for v in values), dtype=np.float64, count=len(values))


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def to_labels(values: Iterable[Any]) -> np.ndarray:
    """Object array of normalised category strings, None for missing.

    >>> to_labels(["en", "", None]).tolist(), to_labels([3, 3.0, True, "", float("nan")]).tolist()
    (['en', None, None], ['3', '3', 'true', None, None])
    """
    values = values if isinstance(values, (list, np.ndarray)) else list(values)
    if set(map(type, values)) <= _TEXT:  # the usual case, a fifth of the cost: only "" to normalise
        labels = [value or None for value in values]
    else:
        labels = [_label(v) for v in values]
    array = np.empty(len(labels), dtype=object)
    array[:] = labels
    return array


_TEXT = {str, type(None)}


def _label(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    if isinstance(value, str):
        return value
    return str(value)


def label_codes(labels: np.ndarray, code_of: Callable[[str], int], missing: int) -> tuple[np.ndarray, set[Any]]:
    """Each label's code (`missing` for None), asking `code_of` once per distinct label, and the
    distinct labels: batches repeat a few labels many times.

    >>> codes, distinct = label_codes(np.array(["en", None, "en", "es"], dtype=object), {"en": 0, "es": 1}.get, -1)
    >>> codes.tolist(), sorted(distinct, key=str)
    ([0, -1, 0, 1], [None, 'en', 'es'])
    """
    values = labels.tolist()
    distinct = set(values)
    codes = {v: missing if v is None else code_of(str(v)) for v in distinct}
    return np.fromiter(map(codes.__getitem__, values), dtype=np.intp, count=len(values)), distinct


def to_booleans(values: Iterable[Any]) -> np.ndarray:
    """Labels "true"/"false" whatever the spelling (True, "TRUE", 1, "0")."""
    spellings = {"true": "true", "1": "true", "yes": "true", "false": "false", "0": "false", "no": "false"}
    return to_labels(spellings.get(str(v).lower(), str(v)) if v is not None and v != "" else None for v in values)


def numeric_fields(spec: Spec) -> set[str]:
    """The fields that are numbers: numeric features and the prediction score."""
    fields = {name for name, kind in spec.features.items() if kind == "numeric"}
    if spec.prediction_score:
        fields.add(spec.prediction_score)
    return fields


def coerce(raw: dict[str, Any], spec: Spec) -> Columns:
    """Typed columns from raw per-field sequences named as in the spec."""
    numeric = numeric_fields(spec)
    boolean = {name for name, kind in spec.features.items() if kind == "boolean"}
    columns: Columns = {}
    for name, values in raw.items():
        if name in numeric:
            columns[name] = values.astype(np.float64) if isinstance(values, np.ndarray) and values.dtype.kind == "f" \
                else to_numeric(values)
        elif name in boolean:
            columns[name] = to_booleans(values)
        else:
            columns[name] = to_labels(values)
    for name in spec.languages:  # derived segment fields: the language each text is in
        if name in columns:
            known = columns.get(language_field(name))
            if known is None:
                columns[language_field(name)] = identify(columns[name])
            elif (unknown := np.flatnonzero(known == None)).size:  # noqa: E711
                # Joined records carry their request's language, identified once: only the rest here.
                known[unknown] = identify(columns[name][unknown])
    return columns


def concatenate(parts: Sequence[Columns]) -> Columns:
    """One batch of columns from consecutive batches with the same fields.

    >>> concatenate([{"x": np.array([1.0])}, {"x": np.array([2.0, 3.0])}])["x"].tolist()
    [1.0, 2.0, 3.0]
    """
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def take(columns: Columns, rows: np.ndarray) -> Columns:
    """The chosen rows (a boolean mask or indices) of every column."""
    return {name: values[rows] for name, values in columns.items()}


def organic_rows(provenance: np.ndarray) -> np.ndarray:
    """Which rows are organic: provenance `organic`, or none given (production traffic rarely says).

    >>> organic_rows(np.array(["organic", None, "synthetic"], dtype=object)).tolist()
    [True, True, False]
    """
    return np.asarray((provenance == None) | (provenance == ORGANIC), dtype=bool)  # noqa: E711


def organic_only(columns: Columns, provenance: str) -> Columns:
    """The organic rows of a table's columns (all of them when it has no `provenance` column)."""
    return take(columns, organic_rows(columns[provenance])) if provenance in columns else columns


class Reservoir:
    """A uniform sample of at most `size` rows of a stream of column batches: the rows with the
    smallest random keys (bottom-k), so a sample of any prefix of the stream is uniform too.

    >>> reservoir = Reservoir(size=3, seed=0)
    >>> for start in range(0, 10, 4):
    ...     reservoir.add({"x": np.arange(start, min(start + 4, 10), dtype=np.float64)})
    >>> len(reservoir.sample["x"]), set(reservoir.sample["x"].tolist()) <= set(range(10))
    (3, True)
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.sample: Columns = {}
        self._keys = np.empty(0)
        self._rng = np.random.default_rng(seed)

    def add(self, chunk: Columns) -> None:
        rows = len(next(iter(chunk.values()))) if chunk else 0
        keys = np.concatenate((self._keys, self._rng.random(rows)))
        merged = {name: np.concatenate((self.sample[name], values)) if self.sample else values
                  for name, values in chunk.items()}
        keep = np.sort(np.argpartition(keys, self.size)[: self.size]) if len(keys) > self.size else np.arange(len(keys))
        self._keys = keys[keep]
        self.sample = {name: values[keep] for name, values in merged.items()}
