"""The drift scenario of the acceptance test: 20 numeric and 2 categorical features, two segments.

Training rows and live events come from the same generator; from `shift_at` on, three numeric
features move (two by 0.5 sd in location, one by 1.5x in scale), `channel` gains a value the
synthetic data never had, and a `language` the profile never saw starts to arrive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import orjson

NUMERIC = [f"x{i:02d}" for i in range(20)]
SHIFTED = {"x03": ("location", 0.5), "x07": ("location", -0.5), "x12": ("scale", 1.5)}
CATEGORIES = {"channel": ["web", "app", "email", "phone"], "plan": ["free", "pro", "team", "enterprise", "edu"]}
NEW_CHANNEL = "whatsapp"
LANGUAGES, NEW_LANGUAGE = ["en", "de", "fr"], "es"
REGIONS = ["eu", "us", "apac"]
MODEL = "scenario-model"

SPEC = {
    "model": MODEL,
    "id_field": "request_id",
    "features": {**{name: "numeric" for name in NUMERIC}, "channel": "categorical", "plan": "categorical"},
    "segments": ["language", "region"],
}


def _rows(rng: np.random.Generator, n: int, drifted: np.ndarray | None = None) -> dict[str, Any]:
    drifted = np.zeros(n, dtype=bool) if drifted is None else drifted
    means = np.linspace(-3, 3, len(NUMERIC))
    scales = np.linspace(0.5, 4, len(NUMERIC))
    columns: dict[str, Any] = {}
    for i, name in enumerate(NUMERIC):
        z = rng.standard_normal(n)
        kind, size = SHIFTED.get(name, ("", 0.0))
        if kind == "location":
            z = np.where(drifted, z + size, z)
        elif kind == "scale":
            z = np.where(drifted, z * size, z)
        columns[name] = means[i] + scales[i] * z
    columns["channel"] = rng.choice(CATEGORIES["channel"], n, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    new_channel = drifted & (rng.random(n) < 0.15)
    columns["channel"][new_channel] = NEW_CHANNEL
    columns["plan"] = rng.choice(CATEGORIES["plan"], n, p=[0.4, 0.3, 0.15, 0.1, 0.05]).astype(object)
    columns["language"] = rng.choice(LANGUAGES, n, p=[0.6, 0.25, 0.15]).astype(object)
    columns["language"][drifted & (rng.random(n) < 0.12)] = NEW_LANGUAGE
    columns["region"] = rng.choice(REGIONS, n, p=[0.5, 0.3, 0.2]).astype(object)
    return columns


def write_training(path: Path, rows: int = 50_000, seed: int = 1) -> None:
    """The synthetic training table as CSV."""
    columns = _rows(np.random.default_rng(seed), rows)
    names = list(columns)
    with path.open("w") as out:
        out.write("request_id," + ",".join(names) + "\n")
        for i in range(rows):
            out.write(f"t{i}," + ",".join(_cell(columns[name][i]) for name in names) + "\n")


def _cell(value: Any) -> str:
    return repr(float(value)) if isinstance(value, (float, np.floating)) else str(value)


def events(n: int = 100_000, shift_at: int = 50_000, seed: int = 2) -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    columns = _rows(rng, n, drifted=np.arange(n) >= shift_at)
    for i in range(n):
        yield {
            "request_id": f"r{i}",
            "timestamp": 1_700_000_000 + i,
            "model": MODEL,
            "features": {name: (float(columns[name][i]) if name in NUMERIC else columns[name][i])
                         for name in [*NUMERIC, "channel", "plan"]},
            "segments": {"language": columns["language"][i], "region": columns["region"][i]},
        }


def write_events(path: Path, n: int = 100_000, shift_at: int = 50_000, seed: int = 2) -> None:
    with path.open("wb") as out:
        for event in events(n, shift_at, seed):
            out.write(orjson.dumps(event) + b"\n")
