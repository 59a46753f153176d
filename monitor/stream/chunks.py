"""The worker's side of window assembly: the cumulative partial of a partition's chunk in progress."""

from __future__ import annotations

import numpy as np

from monitor.analyzer import Analyzer
from monitor.columns import Columns
from monitor.detectors import block_ends
from monitor.sketch import Sketch
from monitor.windows import Blocks, Partial, Windowing


class Chunk:
    """Sketches the events of one aligned offset range [first, first + size) of one partition."""

    def __init__(self, analyzer: Analyzer, windowing: Windowing, source: str, partition: int,
                 first_offset: int, size: int) -> None:
        self.analyzer = analyzer
        self.windowing = windowing
        self.source = source
        self.partition = partition
        self.first_offset = first_offset
        self.end_offset = first_offset + size
        self.next_offset = first_offset
        self._sketches: dict[int, Sketch] = {}
        # Per window and detector channel, the bin indices of the rows read and their offsets.
        self._indices: dict[int, dict[str, list[np.ndarray]]] = {}
        self._offsets: dict[int, dict[str, list[np.ndarray]]] = {}

    @staticmethod
    def start(offset: int, size: int) -> int:
        """The first offset of the chunk that holds `offset`."""
        return offset // size * size

    def add(self, columns: Columns, offsets: np.ndarray, timestamps_ms: np.ndarray, stream: str,
            events: bool = True) -> None:
        """Adds rows read in this chunk, with the offset and record timestamp each is attributed to,
        to the channels of `stream`. `events=False` marks joined records (see `Sketcher.update`)."""
        if not len(offsets):
            return
        keys = self.windowing.key(offsets, timestamps_ms)
        for key in np.unique(keys).tolist():
            rows = keys == key
            part = {name: values[rows] for name, values in columns.items()} if not rows.all() else columns
            encoded = self.analyzer.sketcher.encode(part, stream)
            sketch = self._sketches.setdefault(key, self.analyzer.sketcher.empty())
            self.analyzer.sketcher.update(sketch, part, encoded, events=events)
            for name, channel in encoded.items():
                if channel.owner is None:
                    self._indices.setdefault(key, {}).setdefault(name, []).append(channel.index)
                    self._offsets.setdefault(key, {}).setdefault(name, []).append(offsets[rows])

    def advance(self, next_offset: int) -> None:
        """Records that every offset below `next_offset` was read, valid or not."""
        self.next_offset = max(self.next_offset, min(next_offset, self.end_offset))

    @property
    def complete(self) -> bool:
        return self.next_offset >= self.end_offset

    def partial(self, caught_up: bool) -> Partial:
        block = self.analyzer.settings.detector.block
        blocks = {}
        for key, channels in self._indices.items():
            indices = {name: np.concatenate(parts) for name, parts in channels.items()}
            ends = {name: block_ends(np.concatenate(parts), block) for name, parts in self._offsets[key].items()}
            blocks[key] = Blocks(self.analyzer.blocks(indices), ends)
        return Partial(self.source, self.partition, self.first_offset, self.next_offset, self.complete, caught_up,
                       {key: sketch.copy() for key, sketch in self._sketches.items()}, blocks)
