"""Joining a request's prediction, and later its ground truth, by `request_id`.

Whichever side arrives first waits, for at most `ttl` seconds, among at most `max_pending` waiting
entries per kind and within `max_bytes` for all kinds; what expires or is pushed out unmatched is
counted, never kept. A joined
prediction carries its request's features and segments; a joined feedback carries them and the
predicted label: what the performance channel needs, with the features that place a labelled
prediction in its slices and derived segments (the language of its text).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any

import orjson

from monitor.core.columns import ORGANIC

ENTRY_BYTES = 400  # an entry's own memory (dict slot, key, tuple, expiry), measured with tracemalloc


def entry_bytes(key: str, value: Any) -> int:
    """The memory an entry holds, estimated from its JSON size: within ~10% of tracemalloc's
    figure for segments and predictions (~500 bytes an entry)."""
    return ENTRY_BYTES + len(key) + 4 * len(orjson.dumps(value))


class _Waiting:
    """Entries by request id, oldest first, each with its expiry time and estimated size."""

    def __init__(self, max_pending: int, max_bytes: int) -> None:
        self.max_pending = max_pending
        self.max_bytes = max_bytes
        self.bytes = 0
        self.entries: OrderedDict[str, tuple[float, Any, int]] = OrderedDict()

    def put(self, key: str, value: Any, expires: float) -> int:
        """Stores a value; returns how many entries it pushed out."""
        self.take(key)
        size = entry_bytes(key, value)
        self.entries[key] = (expires, value, size)
        self.bytes += size
        pushed = 0
        while len(self.entries) > self.max_pending or self.bytes > self.max_bytes:
            self.bytes -= self.entries.popitem(last=False)[1][2]
            pushed += 1
        return pushed

    def take(self, key: str) -> Any | None:
        entry = self.entries.pop(key, None)
        if entry is None:
            return None
        self.bytes -= entry[2]
        return entry[1]

    def expire(self, now: float) -> int:
        expired = 0
        while self.entries:
            key, (expires, _, size) = next(iter(self.entries.items()))
            if expires > now:
                break
            del self.entries[key]
            self.bytes -= size
            expired += 1
        return expired


class JoinBuffer:
    """Joins predictions to requests (either order) and feedback to joined predictions.

    >>> join = JoinBuffer(ttl=60, max_pending=100)
    >>> join.prediction("r1", {"label": "billing"}, now=0)
    []
    >>> join.request("r1", {"amount": 3.5}, {"language": "de"}, None, now=1)  # doctest: +NORMALIZE_WHITESPACE
    [{'request_id': 'r1', 'features': {'amount': 3.5}, 'segments': {'language': 'de'}, 'provenance': None,
      'prediction': {'label': 'billing'}}]
    >>> join.feedback("r1", "shipping", "synthetic", now=2)  # doctest: +NORMALIZE_WHITESPACE
    [{'request_id': 'r1', 'features': {'amount': 3.5}, 'segments': {'language': 'de'}, 'provenance': 'synthetic',
      'prediction': {'label': 'billing'}, 'label': 'shipping'}]

    A joined record is organic when its request and its label both are; otherwise it takes the
    provenance that is not (a synthetic label of organic traffic measures no organic accuracy).
    """

    def __init__(self, ttl: float, max_pending: int, max_bytes: int = 256 << 20) -> None:
        self.ttl = ttl
        share = max_bytes // 4
        self.requests = _Waiting(max_pending, share)  # request id -> (features, segments, provenance), waiting
        self.predictions = _Waiting(max_pending, share)  # request id -> prediction, waiting for a request
        self.joined = _Waiting(max_pending, share)  # request id -> joined prediction, waiting for feedback
        self.feedbacks = _Waiting(max_pending, share)  # request id -> (label, provenance), waiting for a prediction
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (kind, matched | expired)

    def request(self, request_id: str, features: dict[str, Any], segments: dict[str, Any], provenance: str | None,
                now: float) -> list[dict[str, Any]]:
        request = (features, segments, provenance)
        prediction = self.predictions.take(request_id)
        if prediction is None:
            self._count("request", "expired", self.requests.put(request_id, request, now + self.ttl))
            return []
        return self._joined(request_id, request, prediction, now)

    def prediction(self, request_id: str, prediction: dict[str, Any], now: float) -> list[dict[str, Any]]:
        request = self.requests.take(request_id)
        if request is None:
            self._count("prediction", "expired", self.predictions.put(request_id, prediction, now + self.ttl))
            return []
        return self._joined(request_id, request, prediction, now)

    def feedback(self, request_id: str, label: Any, provenance: str | None, now: float) -> list[dict[str, Any]]:
        joined = self.joined.take(request_id)
        if joined is None:
            self._count("feedback", "expired",
                        self.feedbacks.put(request_id, (label, provenance), now + self.ttl))
            return []
        self._count("feedback", "matched")
        return [_labelled(joined, label, provenance)]

    def _joined(self, request_id: str, request: tuple[dict[str, Any], dict[str, Any], str | None],
                prediction: dict[str, Any], now: float) -> list[dict[str, Any]]:
        self._count("prediction", "matched")
        features, segments, provenance = request
        record = {"request_id": request_id, "features": features, "segments": segments, "provenance": provenance,
                  "prediction": prediction}
        waiting = self.feedbacks.take(request_id)
        if waiting is not None:
            self._count("feedback", "matched")
            return [record, _labelled(record, *waiting)]
        self._count("joined", "expired", self.joined.put(request_id, record, now + self.ttl))
        return [record]

    def expire(self, now: float) -> None:
        for kind, waiting in (("request", self.requests), ("prediction", self.predictions),
                              ("joined", self.joined), ("feedback", self.feedbacks)):
            self._count(kind, "expired", waiting.expire(now))

    def _count(self, kind: str, outcome: str, n: int = 1) -> None:
        if n:
            self.outcomes[(kind, outcome)] += n

    def pending(self) -> int:
        return sum(len(w.entries) for w in (self.requests, self.predictions, self.joined, self.feedbacks))

    def pending_bytes(self) -> int:
        """The estimated memory the waiting entries hold."""
        return sum(w.bytes for w in (self.requests, self.predictions, self.joined, self.feedbacks))


def _labelled(record: dict[str, Any], label: Any, provenance: str | None) -> dict[str, Any]:
    """A joined prediction with its label; the label's provenance counts unless it is organic."""
    source = provenance if provenance not in (None, ORGANIC) else record["provenance"]
    return {**record, "provenance": source, "label": label}
