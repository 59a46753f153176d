"""Windows assembled from partial sketches, each event counted exactly once.

A worker reads its partitions in *chunks*: fixed, aligned offset ranges [k*C, (k+1)*C) of one
source partition. For the chunk in progress it keeps a cumulative `Partial` (one sketch per window
the chunk's events fall in, plus the detector blocks) and sends it again as it grows. The
`Assembler` keeps the newest version of every chunk, so a version sent twice, or a chunk rebuilt
from Kafka after a restart, *replaces* what it had instead of adding to it. A worker commits its
offsets only at chunk boundaries, after the chunk's last version was sent: a restart resumes at the
start of a chunk and rebuilds exactly the same partial.

A window's key comes from the event: its record timestamp (time windows) or its offset (count
windows, `events` per window spread over the partitions). Chunk boundaries, window keys and the
order in which blocks reach the detectors depend only on the data, not on which worker read what,
so two workers produce the same windows as one.

A window closes when every source partition has moved past it or is idle. Idle is what the
partition's reader last said in its `Progress` (sent after its partials at every flush): caught up
with the end of the partition, and nothing new read for `idle_seconds` of polling. A partition it
has not heard from since it (re)started, or whose last word is older than `idle_seconds`, holds
every window open: after a start-up behind a backlog, a rebalance or a stalled reader the merger
waits rather than close windows early. An idle partition releases a window only once a later
window has been open for `idle_seconds` (its reader's highwater may be a fetch old). Events
that arrive for a closed window are counted as late, not merged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, MutableMapping

import numpy as np
import orjson

from monitor.core.detectors import DriftDetectors
from monitor.core.sketch import Sketch, as_array, packed
from monitor.core.types import Detection


@dataclass(frozen=True, slots=True)
class Windowing:
    """Which window an event belongs to: by record time (`seconds`) or by offset (`events`)."""

    seconds: float | None = 60.0
    events: int | None = None
    partitions: int = 1

    def key(self, offsets: np.ndarray, timestamps_ms: np.ndarray) -> np.ndarray:
        """Window keys of a batch: the window's start in ms, or its index for count windows.

        >>> Windowing(seconds=10).key(np.array([5, 6]), np.array([19_999, 20_000])).tolist()
        [10000, 20000]
        >>> Windowing(seconds=None, events=100, partitions=4).key(np.array([24, 25]), np.zeros(2)).tolist()
        [0, 1]
        """
        if self.events:
            return offsets // max(self.events // self.partitions, 1)
        width = int(self.seconds * 1000)  # type: ignore[operator]
        return timestamps_ms // width * width


@dataclass(slots=True)
class Blocks:
    """Detector input of one chunk: per channel, bin counts of consecutive blocks, and each
    block's last offset (a stream's own events and the records joined to them differ)."""

    counts: dict[str, np.ndarray]
    ends: dict[str, np.ndarray]

    def to_json(self) -> dict[str, Any]:
        return {"counts": self.counts, "ends": self.ends}  # arrays, as `Sketch.to_json`

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Blocks:
        return cls({k: as_array(v, np.int64) for k, v in data["counts"].items()},
                   {k: as_array(v, np.int64) for k, v in data["ends"].items()})


@dataclass(slots=True)
class Partial:
    """The cumulative sketch of one chunk of one source partition, split by window."""

    source: str
    partition: int
    first_offset: int
    next_offset: int  # one past the last offset read so far
    complete: bool  # the chunk's last offset has been read: no newer version will come
    windows: dict[int, Sketch] = field(default_factory=dict)
    blocks: dict[int, Blocks] = field(default_factory=dict)

    @property
    def chunk(self) -> str:
        return f"{self.source}/{self.partition}/{self.first_offset}"

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "partition": self.partition, "first_offset": self.first_offset,
            "next_offset": self.next_offset, "complete": self.complete,
            "windows": {str(k): v.to_json() for k, v in self.windows.items()},
            "blocks": {str(k): v.to_json() for k, v in self.blocks.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Partial:
        return cls(data["source"], data["partition"], data["first_offset"], data["next_offset"], data["complete"],
                   {int(k): Sketch.from_json(v) for k, v in data["windows"].items()},
                   {int(k): Blocks.from_json(v) for k, v in data["blocks"].items()})

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_json(), default=packed)

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> Partial:
        return cls.from_json(orjson.loads(raw))


@dataclass(frozen=True, slots=True)
class Position:
    """Where a reader stands on one partition: caught up with its end or not, and for how many
    seconds of polling it has read nothing new from it."""

    source: str
    partition: int
    caught_up: bool
    idle_seconds: float


@dataclass(frozen=True, slots=True)
class Progress:
    """A reader's positions on every partition it reads, sent after its partials at each flush."""

    positions: tuple[Position, ...]

    def to_bytes(self) -> bytes:
        return orjson.dumps({"progress": [[p.source, p.partition, p.caught_up, p.idle_seconds]
                                          for p in self.positions]})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        return cls(tuple(Position(str(s), int(p), bool(c), float(i)) for s, p, c, i in data["progress"]))


@dataclass(frozen=True, slots=True)
class RenewBaseline:
    """An operator's word (`synthdrift baseline renew`): take the organic baseline again."""

    def to_bytes(self) -> bytes:
        return b'{"renew_baseline": true}'


def decode(raw: bytes | str) -> Partial | Progress | RenewBaseline:
    """A message of the sketches topic: a chunk's partial, a reader's progress, or a renewal."""
    data = orjson.loads(raw)
    if "renew_baseline" in data:
        return RenewBaseline()
    return Progress.from_json(data) if "progress" in data else Partial.from_json(data)


@dataclass(frozen=True, slots=True)
class Window:
    key: int
    sketch: Sketch
    blocks: list[tuple[str, int, Blocks]]  # source, partition, blocks: in that order, the detectors' input

    def detect(self, detectors: DriftDetectors) -> list[tuple[str, int, Detection]]:
        """The window's blocks through the detectors, in their order, in one update (not one per
        chunk: the detectors' own work a call, a few dozen array operations a channel, was most of
        their cost); each detection with its source and partition, at its offset, in part order."""
        counts: dict[str, list[np.ndarray]] = {}
        positions: dict[str, list[np.ndarray]] = {}  # each block's index in `origins`, in place of its end
        origins: list[tuple[int, int, str, int]] = []  # part, end, source, partition
        for part, (source, partition, blocks) in enumerate(self.blocks):
            for name, ends in blocks.ends.items():
                counts.setdefault(name, []).append(blocks.counts[name])
                positions.setdefault(name, []).append(np.arange(len(origins), len(origins) + len(ends)))
                origins += [(part, end, source, partition) for end in ends.tolist()]
        found = detectors.update({name: np.concatenate(c) for name, c in counts.items()},
                                 {name: np.concatenate(p) for name, p in positions.items()})
        located = sorted(((origins[d.offset], d) for d in found), key=lambda pair: pair[0][:2])
        return [(source, partition, replace(d, offset=end)) for (_, end, source, partition), d in located]


class Assembler:
    """Merges partials into windows; its state lives in `store` (a Faust table, or a dict).

    Keys of `store` (JSON values, as a Faust table keeps them): `chunk:<source>/<partition>/<first
    offset>` -> the chunk's newest partial as JSON text (one string, not a tree of Python objects:
    ten times less memory), `closed` -> the newest closed window key and the state judging it left
    (one write: a worker killed while closing a window leaves both or neither), `late` -> events that came
    after their window closed, `done:<source>/<partition>` -> the first offset of the partition's
    last chunk merged, closed and dropped: a chunk that comes again at or below it is a reread
    (a worker that died before it committed), not late news.
    """

    def __init__(self, store: MutableMapping[str, Any], empty: Sketch, sources: dict[str, int],
                 idle_seconds: float, opened: float = -math.inf) -> None:
        """`opened`: when this process took the state over (a restart, a rebalance). It then replays
        the sketches topic from its last commit: a reader's word of idleness heard within
        `idle_seconds` of that may be old news (the reader since read more, or died), so none is taken
        as fresh then, and the windows reloaded count as first seen then."""
        self.store = store
        self.empty = empty
        self.sources = sources  # source topic -> partition count
        self.idle_seconds = idle_seconds
        self.opened = opened
        self._newest: dict[tuple[str, int], int] = {}  # per partition, the newest window it has events in
        self._positions: dict[tuple[str, int], tuple[Position, float]] = {}  # the last word, and when it came
        self._first_seen: dict[int, float] = {}  # window key -> when a partial first had events in it
        self._chunks: dict[str, Partial] = {}
        for key in list(store):
            raw = store.get(key)
            if str(key).startswith("chunk:") and raw is not None:  # a deleted key may linger as None
                self._remember(Partial.from_bytes(raw), opened)

    def _remember(self, partial: Partial, now: float) -> None:
        self._chunks[f"chunk:{partial.chunk}"] = partial
        for window in partial.windows:
            self._first_seen.setdefault(window, now)
        if partial.windows:
            where, newest = (partial.source, partial.partition), max(partial.windows)
            self._newest[where] = max(self._newest.get(where, newest), newest)

    def add(self, partial: Partial, now: float, encoded: bytes | None = None) -> int:
        """Keeps the newest version of the partial's chunk (`encoded`: its bytes as received, stored as
        they are); returns the events it brought too late."""
        key = f"chunk:{partial.chunk}"
        previous = self._chunks.get(key)
        if (previous is not None and previous.next_offset >= partial.next_offset
                and partial.windows.keys() <= previous.windows.keys()):
            return 0  # a replay of a version already merged (a chunk's versions only grow)
        done = self._number(f"done:{partial.source}/{partial.partition}")
        closed = self.closed()
        if (previous is None and done is not None and partial.first_offset <= done and closed is not None
                and all(window <= closed for window in partial.windows)):
            # A chunk merged and dropped already (it is dropped once all its windows closed),
            # reread after a restart. One with newer windows is another log's: a topic recreated.
            return 0
        late = 0
        if closed is not None:
            for window, sketch in partial.windows.items():
                if window <= closed:
                    before = previous.windows[window].events if previous and window in previous.windows else 0
                    late += sketch.events - before
            if late:
                self.store["late"] = self.late_events() + late
        self.store[key] = (encoded or partial.to_bytes()).decode()
        self._remember(partial, now)
        self._positions.pop((partial.source, partial.partition), None)  # it read something: not idle
        return late

    def progress(self, progress: Progress, now: float) -> None:
        """Takes a reader's positions (it sends them after the partials they account for)."""
        heard = now if now - self.opened >= self.idle_seconds else -math.inf  # perhaps a replay: never fresh
        for position in progress.positions:
            self._positions[(position.source, position.partition)] = (position, heard)

    def close_ready(self, now: float, judge: Callable[[Window], dict[str, Any]] | None = None) -> list[Window]:
        """The windows that can close now, oldest first, each removed from the open state. `judge`
        takes each in turn and returns the state it leaves, kept with the window's closing."""
        closed = self.closed()
        open_keys = sorted({w for p in self._chunks.values() for w in p.windows if closed is None or w > closed})
        windows = []
        for window in open_keys:
            if not self._ready(window, now):
                break
            assembled = self._assemble(window)
            self.store["closed"] = {"window": window, "state": judge(assembled) if judge else {}}
            windows.append(assembled)
            closed = window
        for key, partial in list(self._chunks.items()):
            if partial.complete and closed is not None and all(w <= closed for w in partial.windows):
                del self.store[key], self._chunks[key]
                done_key = f"done:{partial.source}/{partial.partition}"
                self.store[done_key] = max(self._number(done_key) or 0, partial.first_offset)
        for window_key in [k for k in self._first_seen if closed is not None and k <= closed]:
            del self._first_seen[window_key]
        return windows

    def _ready(self, window: int, now: float) -> bool:
        # A reader's highwater can be a fetch old: a partition it calls idle may have events for
        # this window on their way. Idle partitions release a window only once a later one has
        # been open for `idle_seconds`, time enough for those to arrive.
        later = [when for key, when in self._first_seen.items() if key > window]
        settled = not later or now - min(later) >= self.idle_seconds
        for source, partitions in self.sources.items():
            for partition in range(partitions):
                newest = self._newest.get((source, partition))
                if newest is not None and newest > window:
                    continue  # moved on
                position, heard = self._positions.get((source, partition), (None, -math.inf))
                fresh = now - heard <= self.idle_seconds
                if not (settled and position and fresh and position.caught_up
                        and position.idle_seconds >= self.idle_seconds):
                    return False
        return True

    def _assemble(self, window: int) -> Window:
        sketch = self.empty
        blocks = []
        ordered = sorted((p for p in self._chunks.values() if window in p.windows),
                         key=lambda p: (p.source, p.partition, p.first_offset))
        for partial in ordered:
            sketch = sketch.merge(partial.windows[window])
            if window in partial.blocks:
                blocks.append((partial.source, partial.partition, partial.blocks[window]))
        return Window(window, sketch, blocks)

    def closed(self) -> int | None:
        """The newest closed window's key."""
        value = self.store.get("closed")
        return None if value is None else int(value["window"])

    def judged_state(self) -> dict[str, Any]:
        """The state judging the newest closed window left."""
        value = self.store.get("closed")
        return {} if value is None else dict(value["state"])

    def late_events(self) -> int:
        return self._number("late") or 0

    def _number(self, key: str) -> int | None:
        value = self.store.get(key)
        return None if value is None else int(value)
