"""Producing events to the topics: a file replayed (`replay`), or traffic simulated from a profile."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np
import orjson
from aiokafka import AIOKafkaProducer

from monitor.config import Topics
from monitor.core.profile import Profile


def split(record: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The parts of a joined record, by stream: the request, its prediction, its feedback.

    >>> [s for s, _ in split({"request_id": "r", "model": "m", "features": {}, "prediction": {"label": 1}})]
    ['requests', 'predictions']
    """
    common: dict[str, Any] = {k: record[k] for k in ("request_id", "timestamp") if k in record}
    request = {k: v for k, v in record.items() if k not in ("prediction", "label")}
    yield "requests", request
    if "prediction" in record:
        yield "predictions", {**common, "model": record.get("model"), "prediction": record["prediction"]}
    if "label" in record:
        yield "feedback", {**common, "label": record["label"], "provenance": record.get("provenance")}


def timestamp_ms(value: Any) -> int | None:
    """A record timestamp from an event's `timestamp`: Unix seconds or ISO 8601."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value * 1000)
    if isinstance(value, str):
        try:
            return int(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return None
    return None


async def produce(client_options: dict[str, Any], topics: Topics, lines: Iterable[bytes], rate: float = 0.0,
                  joined: bool = True) -> int:
    """Sends every line to its topics, keyed by request id, stamped with the event's timestamp.

    A line that is not a JSON object is sent as is to the requests topic, so that backtests of
    bad input reach the dead-letter topic like production traffic would. `rate` limits events/s.
    """
    producer = AIOKafkaProducer(linger_ms=20, max_batch_size=1 << 20, **client_options)
    await producer.start()
    names = {"requests": topics.requests, "predictions": topics.predictions, "feedback": topics.feedback}
    sent, started = 0, time.monotonic()
    try:
        for line in lines:
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                record = None
            if not isinstance(record, dict):
                await producer.send(topics.requests, value=line.rstrip(b"\n"))
            else:
                key = str(record.get("request_id", "")).encode() or None
                stamp = timestamp_ms(record.get("timestamp"))
                for stream, part in (split(record) if joined else [("requests", record)]):
                    await producer.send(names[stream], value=orjson.dumps(part), key=key, timestamp_ms=stamp)
            sent += 1
            if rate and sent % 100 == 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


@dataclass(frozen=True, slots=True)
class Drift:
    """One injected departure from the synthetic data, from event `at` on.

    `feature=shift:0.5` moves a numeric feature by 0.5 synthetic sds, `feature=scale:1.5` widens
    it, `feature=new:VALUE:0.2` gives a categorical feature or a segment field a value the
    synthetic data never had in 20% of events.
    """

    field: str
    kind: str
    amount: float
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Drift:
        try:
            name, rule = text.split("=", 1)
            kind, *rest = rule.split(":")
            if kind == "new":
                return cls(name, kind, float(rest[1]), rest[0])
            if kind in ("shift", "scale"):
                return cls(name, kind, float(rest[0]))
        except (ValueError, IndexError):
            pass
        raise ValueError(f"bad drift {text!r}: use FIELD=shift:SDS, FIELD=scale:FACTOR or FIELD=new:VALUE:SHARE")


def simulate(profile: Profile, events: int, drifts: list[Drift], at: int, seed: int = 0,
             start_time: float | None = None) -> Iterator[dict[str, Any]]:
    """Events drawn from the profile's reservoir sample, with `drifts` applied from event `at` on.

    Timestamps advance by one millisecond an event from `start_time` (default: now).
    """
    spec, sample = profile.spec, profile.sample
    rng = np.random.default_rng(seed)
    rows = len(next(iter(sample.values())))
    spreads = _spreads(profile)
    start = time.time() if start_time is None else start_time
    for i in range(events):
        row = int(rng.integers(rows))
        features = {name: _plain(sample[name][row]) for name in spec.features}
        segments = {name: _plain(sample[name][row]) for name in spec.segments}
        if i >= at:
            for drift in drifts:
                target = features if drift.field in features else segments
                if drift.field not in target:
                    continue
                value = target[drift.field]
                if drift.kind == "new" and rng.random() < drift.amount:
                    target[drift.field] = drift.value
                elif drift.kind == "shift" and isinstance(value, float):
                    target[drift.field] = value + drift.amount * spreads.get(drift.field, 1.0)
                elif drift.kind == "scale" and isinstance(value, float):
                    mean = spreads.get(f"{drift.field}.mean", 0.0)
                    target[drift.field] = mean + (value - mean) * drift.amount
        event: dict[str, Any] = {"request_id": f"sim-{seed}-{i}", "timestamp": start + i / 1000,
                                 "model": spec.model, "features": features, "segments": segments}
        if spec.prediction_label:
            prediction = {"label": _plain(sample[spec.prediction_label][row])}
            if spec.prediction_score:
                prediction["score"] = _plain(sample[spec.prediction_score][row])
            event["prediction"] = prediction
        if spec.label:
            event["label"] = _plain(sample[spec.label][row])
        yield event


def _plain(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    return value


def _spreads(profile: Profile) -> dict[str, float]:
    """Synthetic sd (and mean, as `<name>.mean`) of every numeric feature, over all rows."""
    spreads = {}
    for name, kind in profile.spec.features.items():
        if kind == "numeric":
            means, sds = profile.reference.moments(name)
            spreads[name] = float(sds[0]) or 1.0
            spreads[f"{name}.mean"] = float(means[0])
    return spreads
