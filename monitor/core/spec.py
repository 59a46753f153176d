"""The feature spec: which columns synthdrift monitors and how (contract: schemas/spec.schema.json)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from monitor.core import schemas
from monitor.core.errors import UsageError

FeatureKind = Literal["numeric", "categorical", "text", "boolean"]


class SpecError(UsageError, ValueError):
    """A spec that cannot be used; the message says what to fix, in one line."""


@dataclass(frozen=True, slots=True)
class Spec:
    model: str
    features: dict[str, FeatureKind]
    segments: tuple[str, ...] = ()
    id_field: str | None = None
    timestamp_field: str | None = None
    prediction_label: str | None = None
    prediction_score: str | None = None
    label: str | None = None
    provenance: str | None = None
    languages: tuple[str, ...] = ()  # text features whose identified language is a segment field

    @classmethod
    def from_dict(cls, data: Any, source: str = "spec") -> Spec:
        if problem := schemas.problem("spec", data):
            raise SpecError(f"{source}: {problem}")
        prediction = data.get("prediction", {})
        spec = cls(
            model=data["model"],
            features=dict(data["features"]),
            segments=tuple(data.get("segments", ())),
            id_field=data.get("id_field"),
            timestamp_field=data.get("timestamp_field"),
            prediction_label=prediction.get("label"),
            prediction_score=prediction.get("score"),
            label=data.get("label"),
            provenance=data.get("provenance"),
            languages=tuple(data.get("languages", ())),
        )
        clash = set(spec.features) & set(spec.segments)
        if clash:
            raise SpecError(f"{source}: {sorted(clash)[0]!r} is both a feature and a segment; list it once")
        if wrong := [name for name in spec.languages if spec.features.get(name) != "text"]:
            raise SpecError(f"{source}: languages: {wrong[0]!r} is not a text feature; list text features only")
        return spec

    @classmethod
    def load(cls, path: str | Path) -> Spec:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise SpecError(f"{path}: cannot read the spec: {exc}".splitlines()[0]) from None
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"model": self.model}
        for key in ("id_field", "timestamp_field"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        data["features"] = dict(self.features)
        if self.segments:
            data["segments"] = list(self.segments)
        prediction = {k: v for k, v in (("label", self.prediction_label), ("score", self.prediction_score)) if v}
        if prediction:
            data["prediction"] = prediction
        for key in ("label", "provenance"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        if self.languages:
            data["languages"] = list(self.languages)
        return data

    @property
    def segment_fields(self) -> tuple[str, ...]:
        """Every field statistics are sliced by: the declared segments, then each language derived
        from a text feature (`<feature>.language`)."""
        return self.segments + tuple(language_field(name) for name in self.languages)

    @property
    def provenance_column(self) -> str:
        """Where a row's provenance is: the training table's column, or, for live events of a spec
        that names none, a column no table has."""
        return self.provenance or "(provenance)"

    @property
    def columns(self) -> list[str]:
        """Every training-table column the profile reads."""
        names = [*self.features, *self.segments]
        names += [c for c in (self.prediction_label, self.prediction_score, self.label, self.provenance) if c]
        return names


def language_field(feature: str) -> str:
    return f"{feature}.language"


def infer(columns: dict[str, list[Any]], model: str) -> dict[str, Any]:
    """A spec to edit, guessed from a sample of a training table's columns.

    >>> infer({"amount": [1.5, 2.0], "channel": ["web", "app"], "language": ["en", "de"]}, "m")["features"]
    {'amount': 'numeric', 'channel': 'categorical'}
    """
    roles = {"language": "segments", "lang": "segments", "region": "segments", "country": "segments",
             "locale": "segments", "source": "provenance", "provenance": "provenance",
             "label": "label", "true_label": "label", "target": "label",
             "prediction": "prediction.label", "predicted": "prediction.label",
             "score": "prediction.score", "confidence": "prediction.score",
             "id": "id_field", "request_id": "id_field", "timestamp": "timestamp_field", "ts": "timestamp_field"}
    spec: dict[str, Any] = {"model": model, "features": {}}
    for name, values in columns.items():
        role = roles.get(name.lower())
        if role == "segments":
            spec.setdefault("segments", []).append(name)
        elif role and role.startswith("prediction."):
            spec.setdefault("prediction", {})[role.split(".")[1]] = name
        elif role and role not in spec:
            spec[role] = name
        else:
            spec["features"][name] = _kind(values)
    if texts := [name for name, kind in spec["features"].items() if kind == "text"]:
        spec["languages"] = texts
    return spec


def _kind(values: list[Any]) -> FeatureKind:
    present = [v for v in values if v is not None and v != ""]
    if present and all(isinstance(v, bool) or str(v).lower() in ("true", "false") for v in present):
        return "boolean"
    if present and all(_is_number(v) for v in present):
        return "numeric"
    texts = [str(v) for v in present]
    distinct = len(set(texts))
    long_or_varied = sum(len(t) for t in texts) / max(len(texts), 1) > 30 or distinct > 0.5 * len(texts) > 25
    return "text" if long_or_varied and any(" " in t for t in texts) else "categorical"


def _is_number(value: Any) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
