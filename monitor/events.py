"""Live events: bytes -> validated record -> columns named as in the training table.

Validation uses the stream's schema in `schemas/`, compiled once, and for requests the kinds the
spec declares for each feature. What fails is an `Invalid` with a reason from a closed set;
the caller counts it and sends it on (dead-letter topic, or the `check` report), never drops it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from monitor import schemas
from monitor.columns import Columns, coerce
from monitor.spec import Spec

MAX_EVENT_BYTES = 1 << 20

# What each feature kind accepts, as `schemas/spec.schema.json` documents it. Checked in plain
# Python: a compiled schema with one typed property per feature costs several times more per event.
_KIND_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "numeric": ((int, float), "a number or null"),
    "categorical": ((str, int, float, bool), "a string, number, boolean or null"),
    "boolean": ((bool, str, int), "a boolean, string, integer or null"),
    "text": ((str,), "a string or null"),
}


class Reason(StrEnum):
    """Why an event went to the dead letters."""

    NOT_JSON = "not_json"
    NON_FINITE = "non_finite"
    SCHEMA_VIOLATION = "schema_violation"
    UNKNOWN_MODEL = "unknown_model"
    OVERSIZED = "oversized"


@dataclass(frozen=True, slots=True)
class Invalid:
    reason: Reason
    detail: str


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
        schema = schemas.load(SCHEMAS[stream])
        self._validate = schemas.validator(SCHEMAS[stream])
        self._check_model = "model" in schema["required"]
        self._feature_types = [(name, *_KIND_TYPES[kind]) for name, kind in spec.features.items()] \
            if stream == "requests" else []

    def parse(self, raw: bytes) -> dict[str, Any] | Invalid:
        if len(raw) > self.max_bytes:
            return Invalid(Reason.OVERSIZED, f"{len(raw)} bytes > {self.max_bytes}")
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            text = str(exc)
            non_finite = "infinity" in text or b"NaN" in raw or b"Infinity" in raw
            return Invalid(Reason.NON_FINITE if non_finite else Reason.NOT_JSON, text)
        try:
            self._validate(event)
        except schemas.ValidationError as exc:
            return Invalid(Reason.SCHEMA_VIOLATION, exc.message)
        if self._check_model and event["model"] != self.spec.model:
            return Invalid(Reason.UNKNOWN_MODEL, f"model {event['model']!r} is not {self.spec.model!r}")
        if self._feature_types:
            features = event["features"]
            for name, allowed, expected in self._feature_types:
                value = features.get(name)
                if value is not None and type(value) not in allowed:
                    return Invalid(Reason.SCHEMA_VIOLATION, f"features.{name} must be {expected}")
        return event


def to_columns(events: list[dict[str, Any]], spec: Spec) -> Columns:
    """Columns named as in the training table, from validated events or joined records (a part an
    event does not carry reads as missing)."""
    raw: dict[str, list[Any]] = {}
    features = [e.get("features") or {} for e in events]
    for name in spec.features:
        raw[name] = [f.get(name) for f in features]
    if spec.segments:
        segments = [e.get("segments") or {} for e in events]
        for name in spec.segments:
            raw[name] = [s.get(name) for s in segments]
    if spec.prediction_label or spec.prediction_score:
        predictions = [e.get("prediction") or {} for e in events]
        if spec.prediction_label:
            raw[spec.prediction_label] = [p.get("label") for p in predictions]
        if spec.prediction_score:
            raw[spec.prediction_score] = [p.get("score") for p in predictions]
    if spec.label:
        raw[spec.label] = [e.get("label") for e in events]
    if spec.provenance:
        raw[spec.provenance] = [e.get("provenance") for e in events]
    return coerce(raw, spec)
