"""Live events: bytes -> validated record -> columns named as in the training table.

Validation uses the stream's schema in `schemas/`, compiled once; for requests, `features` is
narrowed to the kinds the spec declares. What fails is an `Invalid` with a reason from a closed set;
the caller counts it and sends it on (dead-letter topic, or the `check` report), never drops it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from enum import StrEnum
from itertools import chain
from operator import itemgetter
from typing import Any, Sequence

import numpy as np
import orjson

from monitor.core import schemas
from monitor.core.columns import Columns, coerce
from monitor.core.spec import Spec

MAX_EVENT_BYTES = 1 << 20
# Events parsed at a time, by the worker and by `check`: a slice stays in the CPU cache until it is
# columns (a quarter faster than whole batches of 20,000).
SLICE_EVENTS = 1000

_KIND_TYPES = {
    "numeric": ["number", "null"],
    "categorical": ["string", "number", "boolean", "null"],
    "boolean": ["boolean", "string", "integer", "null"],
    "text": ["string", "null"],
}


class Reason(StrEnum):
    """Why an event went to the dead letters."""

    EMPTY = "empty"
    NOT_JSON = "not_json"
    NON_FINITE = "non_finite"
    SCHEMA_VIOLATION = "schema_violation"
    UNKNOWN_MODEL = "unknown_model"
    OVERSIZED = "oversized"


@dataclass(frozen=True, slots=True)
class Invalid:
    reason: Reason
    detail: str


def event_schema(spec: Spec) -> dict[str, Any]:
    """The live-event schema with `features` narrowed to the kinds this spec declares."""
    schema = copy.deepcopy(schemas.load("event"))
    schema["properties"]["features"]["properties"] = {
        name: {"type": _KIND_TYPES[kind]} for name, kind in spec.features.items()}
    return schema


SCHEMAS = {"requests": "event", "predictions": "prediction", "feedback": "feedback"}


class EventParser:
    """Parses and validates live events of one stream (requests, predictions, feedback) for one
    spec's model. Requests and joined records are checked against the spec's feature kinds.

    >>> spec = Spec(model="m", features={"amount": "numeric"})
    >>> parser = EventParser(spec)
    >>> parser.parse(b'{"model": "m", "features": {"amount": 3}}')["features"]
    {'amount': 3}
    >>> parser.parse(b'{"model": "m", "features": {"amount": NaN}}').reason
    <Reason.NON_FINITE: 'non_finite'>
    """

    def __init__(self, spec: Spec, stream: str = "requests", max_bytes: int = MAX_EVENT_BYTES) -> None:
        self.spec = spec
        self.max_bytes = max_bytes
        schema = event_schema(spec) if stream == "requests" else schemas.load(SCHEMAS[stream])
        self._validate = schemas.compile_schema(schema, "event")
        self._check_model = "model" in schema["required"]
        if self._check_model:  # in a batch, the model is checked by the validator too
            schema = {**schema, "properties": {**schema["properties"], "model": {"const": spec.model}}}
        self._all_valid = schemas.all_valid(schema)

    def parse(self, raw: bytes | None) -> dict[str, Any] | Invalid:
        if not raw:
            return Invalid(Reason.EMPTY, "no value (a tombstone)" if raw is None else "zero bytes")
        if len(raw) > self.max_bytes:
            return Invalid(Reason.OVERSIZED, f"{len(raw)} bytes > {self.max_bytes}")
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Invalid(Reason.NON_FINITE if _non_finite(raw) else Reason.NOT_JSON, str(exc))
        try:
            self._validate(event)
        except schemas.ValidationError as exc:
            return Invalid(Reason.SCHEMA_VIOLATION, exc.message)
        if self._check_model and event["model"] != self.spec.model:
            return Invalid(Reason.UNKNOWN_MODEL, f"model {event['model']!r} is not {self.spec.model!r}")
        return event  # type: ignore[no-any-return]

    def parse_many(self, raws: Sequence[bytes | None]) -> tuple[list[dict[str, Any]], dict[int, Invalid]]:
        """The valid events of a batch, in order, and the invalid ones by their index in `raws`;
        the same verdicts as `parse`, with one validation call when the whole batch is fine."""
        if all(raws) and max(map(len, raws), default=0) <= self.max_bytes:  # type: ignore[arg-type]
            try:
                events = list(map(orjson.loads, raws))  # type: ignore[arg-type]
            except orjson.JSONDecodeError:
                events = None
            if events is not None and self._all_valid(events):
                return events, {}
        parsed = [self.parse(raw) for raw in raws]
        return ([e for e in parsed if not isinstance(e, Invalid)],
                {i: e for i, e in enumerate(parsed) if isinstance(e, Invalid)})


def _non_finite(raw: bytes) -> bool:
    """Whether JSON that orjson refused is valid but for NaN or Infinity (which Python's parser takes)."""
    try:
        json.loads(raw)
    except (ValueError, RecursionError):  # also UnicodeDecodeError; RecursionError: nested too deep
        return False
    return True


def to_columns(events: list[dict[str, Any]], spec: Spec) -> Columns:
    """Columns named as in the training table, from validated events or joined records (a part an
    event does not carry reads as missing)."""
    raw: dict[str, Any] = {}
    features = [e.get("features") or {} for e in events]
    numeric = [name for name, kind in spec.features.items() if kind == "numeric"]
    if len(numeric) > 1 and (matrix := _numeric_matrix(features, numeric)) is not None:
        raw.update(zip(numeric, matrix, strict=True))
    for name in spec.features:
        if name not in raw:
            raw[name] = [f.get(name) for f in features]
    if spec.segment_fields:
        segments = [e.get("segments") or {} for e in events]
        for name in spec.segments:
            raw[name] = [s.get(name) for s in segments]
        for name in spec.segment_fields[len(spec.segments):]:  # derived: a joined record carries its request's
            if any(name in s for s in segments):
                raw[name] = [s.get(name) for s in segments]
    if spec.prediction_label or spec.prediction_score:
        predictions = [e.get("prediction") or {} for e in events]
        if spec.prediction_label:
            raw[spec.prediction_label] = [p.get("label") for p in predictions]
        if spec.prediction_score:
            raw[spec.prediction_score] = [p.get("score") for p in predictions]
    if spec.label:
        raw[spec.label] = [e.get("label") for e in events]
    provenance = [e.get("provenance") for e in events]
    raw[spec.provenance_column] = provenance if any(provenance) else np.full(len(events), None, dtype=object)
    return coerce(raw, spec)


def _numeric_matrix(features: list[dict[str, Any]], names: list[str]) -> np.ndarray | None:
    """The numeric features, one contiguous row per feature, in one C pass over the events when
    each carries all of them; None otherwise (then each column is gathered on its own)."""
    row = itemgetter(*names)
    try:
        values = np.fromiter(chain.from_iterable(map(row, features)), np.float64, len(features) * len(names))
    except (KeyError, TypeError, ValueError):
        return None
    return values.reshape(len(features), len(names)).T.copy()
