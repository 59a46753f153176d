"""Live events: bytes -> validated record -> columns named as in the training table.

Validation uses the stream's schema in `schemas/`, compiled once; for requests, `features` is
narrowed to the kinds the spec declares. What fails is an `Invalid` with a reason from a closed set;
the caller counts it and sends it on (dead-letter topic, or the `check` report), never drops it.

Where no join needs the events as dicts (`check`, a worker without predictions), requests are
decoded in one pass into typed structs generated from the spec (msgspec): the types are checked
while decoding, no dict is built, and columns are gathered by attribute. The structs accept only
what the schema accepts; a slice with anything else goes through orjson and the schema, which give
every event its verdict and reason. `tests/test_events.py` holds the two paths to each other.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from enum import StrEnum
from itertools import chain
from operator import attrgetter, itemgetter, methodcaller
from typing import Annotated, Any, Callable, Literal, Sequence, TypedDict, Union

import msgspec
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

# The schema's types for the one-pass decoder. Integers stop at int64 (msgspec's bounds) because
# orjson reads those beyond 64 bits as floats, and a category "12345678901234567890123" would then
# differ: they go the slow path.
_Integer = Annotated[int, msgspec.Meta(ge=-(1 << 63), le=(1 << 63) - 1)]
_Scalar = Union[str, _Integer, float, bool, None]
_TYPED_KINDS: dict[str, Any] = {
    "numeric": Union[float, None],  # msgspec reads a JSON integer as a float here, as NumPy would
    "categorical": _Scalar,
    "boolean": Union[bool, str, _Integer, None],
    "text": Union[str, None],
}


class _Prediction(TypedDict, total=False):  # a dict, as orjson would give
    label: _Scalar
    score: Union[float, None]
    scores: dict[str, float]


def _attributes(spec: Spec) -> dict[str, str]:
    """Each feature's attribute in a typed event's features: `f0`, `f1`, … (a feature's name need
    not be an identifier)."""
    return {name: f"f{i}" for i, name in enumerate(spec.features)}


def typed_event(spec: Spec) -> type[msgspec.Struct]:
    """The struct a valid request of this spec decodes into: the model's name, the declared
    features (under `_attributes`) and what else the columns read; a part absent is None, as
    `dict.get` gives."""
    attributes = _attributes(spec)
    numeric_first = sorted(spec.features, key=lambda name: spec.features[name] != "numeric")  # see `_numeric_row`
    features = msgspec.defstruct("Features", [(attributes[name], _TYPED_KINDS[spec.features[name]], None)
                                              for name in numeric_first],
                                 rename={attribute: name for name, attribute in attributes.items()})
    return msgspec.defstruct("Event", [
        ("model", Literal[spec.model]),  # another model's event goes the slow path, to be named there
        ("features", features),
        ("request_id", Annotated[str, msgspec.Meta(min_length=1)], None),
        ("timestamp", Union[str, float], None),
        ("segments", dict[str, _Scalar], None),
        ("provenance", Union[str, None], None),
        ("prediction", _Prediction, None),
        ("label", _Scalar, None),
    ])


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

    def __init__(self, spec: Spec, stream: str = "requests", max_bytes: int = MAX_EVENT_BYTES,
                 structs: bool = False) -> None:
        """`structs`: a valid slice of requests may come back as typed structs (one pass, see above)."""
        self.spec = spec
        self.max_bytes = max_bytes
        schema = event_schema(spec) if stream == "requests" else schemas.load(SCHEMAS[stream])
        self._validate = schemas.compile_schema(schema, "event")
        self._check_model = "model" in schema["required"]
        if self._check_model:  # in a batch, the model is checked by the validator too
            schema = {**schema, "properties": {**schema["properties"], "model": {"const": spec.model}}}
        self._all_valid = schemas.all_valid(schema)
        self._typed = msgspec.json.Decoder(typed_event(spec)) if structs and stream == "requests" else None

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

    def parse_many(self, raws: Sequence[bytes | None]) -> tuple[list[Any], dict[int, Invalid]]:
        """The valid events of a batch, in order, and the invalid ones by their index in `raws`;
        the same verdicts as `parse`, with one validation call when the whole batch is fine. The
        events are dicts, or with `structs` typed structs when every one of them decodes."""
        if all(raws) and max(map(len, raws), default=0) <= self.max_bytes:  # type: ignore[arg-type]
            if self._typed is not None:
                try:
                    return list(map(self._typed.decode, raws)), {}  # type: ignore[arg-type]
                except msgspec.DecodeError:  # ValidationError too
                    pass
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


def to_columns(events: Sequence[Any], spec: Spec) -> Columns:
    """Columns named as in the training table, from validated events (dicts, or the structs of
    `typed_event`) or joined records; a part an event does not carry reads as missing."""
    raw: dict[str, Any] = {}
    typed = bool(events) and isinstance(events[0], msgspec.Struct)
    part: Callable[[str], Callable[[Any], Any]] = attrgetter if typed else _key  # type: ignore[assignment]
    features = [f or {} for f in map(part("features"), events)]
    attribute = _attributes(spec) if typed else {}  # a struct's features are attributes; a dict's, keys
    numeric = [name for name, kind in spec.features.items() if kind == "numeric"]
    if len(numeric) > 1:
        row = _numeric_row(len(numeric), len(spec.features)) if typed else itemgetter(*numeric)
        if (matrix := _numeric_matrix(features, row, len(numeric))) is not None:
            raw.update(zip(numeric, matrix, strict=True))
    for name in spec.features:
        if name not in raw:
            raw[name] = list(map(attrgetter(attribute[name]) if typed else _key(name), features))
    if spec.segment_fields:
        segments = [s or {} for s in map(part("segments"), events)]
        for name in spec.segments:
            raw[name] = [s.get(name) for s in segments]
        for name in spec.segment_fields[len(spec.segments):]:  # derived: a joined record carries its request's
            if any(name in s for s in segments):
                raw[name] = [s.get(name) for s in segments]
    if spec.prediction_label or spec.prediction_score:
        predictions = [p or {} for p in map(part("prediction"), events)]
        if spec.prediction_label:
            raw[spec.prediction_label] = [p.get("label") for p in predictions]
        if spec.prediction_score:
            raw[spec.prediction_score] = [p.get("score") for p in predictions]
    if spec.label:
        raw[spec.label] = list(map(part("label"), events))
    provenance = list(map(part("provenance"), events))
    raw[spec.provenance_column] = provenance if any(provenance) else np.full(len(events), None, dtype=object)
    return coerce(raw, spec)


def _numeric_row(numeric: int, features: int) -> Callable[[Any], tuple[Any, ...]]:
    """The numeric feature values of a typed event's features: its first fields (`typed_event`
    puts them there), read at once (a third faster than by name)."""
    if numeric == features:
        return msgspec.structs.astuple
    return lambda values: msgspec.structs.astuple(values)[:numeric]


def _key(name: str) -> Callable[[dict[str, Any]], Any]:
    return methodcaller("get", name)


def _numeric_matrix(features: list[Any], row: Callable[[Any], tuple[Any, ...]], width: int) -> np.ndarray | None:
    """The `width` numeric features `row` gets of each event, one contiguous row per feature, in
    one C pass over the events when each carries all of them; None otherwise (then each column is
    gathered on its own)."""
    try:
        values = np.fromiter(chain.from_iterable(map(row, features)), np.float64, len(features) * width)
    except (KeyError, TypeError, ValueError):
        return None
    return values.reshape(len(features), width).T.copy()
