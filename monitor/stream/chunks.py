"""The worker's side of window assembly: the cumulative partial of a partition's chunk in progress,
and the loop that cuts a batch of records at chunk boundaries."""

from __future__ import annotations

from bisect import bisect_left
from typing import Iterator, Sequence

import numpy as np

from monitor.core.analyzer import Analyzer
from monitor.core.columns import Columns, take
from monitor.core.detectors import block_ends
from monitor.core.sketch import Sketch
from monitor.core.windows import Blocks, Partial, Windowing


class Chunk:
    """Sketches the events of one offset range [first, first + size) of one partition: an aligned one
    but where a partition resumed at an offset cut at another size (see `OpenChunks.resume`)."""

    def __init__(self, analyzer: Analyzer, windowing: Windowing, source: str, partition: int,
                 first_offset: int, size: int) -> None:
        self.analyzer = analyzer
        self.windowing = windowing
        self.source = source
        self.partition = partition
        self.first_offset = first_offset
        self.end_offset = first_offset + size
        self.next_offset = first_offset
        self.sent_offset = first_offset  # the next offset of the last version sent
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
        sketcher = self.analyzer.sketcher
        for key in np.unique(keys).tolist():
            rows = keys == key
            part = take(columns, rows) if not rows.all() else columns
            sketch = self._sketches.setdefault(key, sketcher.empty())
            organic = sketcher.split(sketch, part, events)
            if organic is not None:
                part, rows = take(part, organic), np.flatnonzero(rows)[organic]
            encoded = sketcher.encode(part, stream)
            sketcher.update(sketch, part, encoded, events=events)
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

    def partial(self) -> Partial:
        block = self.analyzer.settings.detector.block
        blocks = {}
        for key, channels in self._indices.items():
            indices = {name: np.concatenate(parts) for name, parts in channels.items()}
            ends = {name: block_ends(np.concatenate(parts), block) for name, parts in self._offsets[key].items()}
            blocks[key] = Blocks(self.analyzer.blocks(indices), ends)
        return Partial(self.source, self.partition, self.first_offset, self.next_offset, self.complete,
                       {key: sketch.copy() for key, sketch in self._sketches.items()}, blocks)


class OpenChunks:
    """The chunk in progress of every partition a worker reads, keyed by (topic, partition)."""

    def __init__(self, analyzer: Analyzer, windowing: Windowing, size: int) -> None:
        self.analyzer = analyzer
        self.windowing = windowing
        self.size = size
        self.open: dict[tuple[str, int], Chunk] = {}

    def runs(self, source: str, partition: int, offsets: Sequence[int]) -> Iterator[tuple[Chunk, int, int]]:
        """Cuts a batch's ascending offsets at chunk boundaries: yields each run's chunk and its
        [first, last) indices into `offsets`, with the chunk already read past the run (the caller
        sketches the run, then sends the chunk once `complete`: it is no longer open).

        >>> chunks = OpenChunks(None, Windowing(), size=10)  # type: ignore[arg-type]
        >>> [(c.first_offset, first, last, c.complete) for c, first, last in chunks.runs("t", 0, [8, 9, 10, 12])]
        [(0, 0, 2, True), (10, 2, 4, False)]
        """
        key = (source, partition)
        first = 0
        while first < len(offsets):
            chunk = self.open.get(key)
            # Below the open chunk: the partition's log began again (a topic recreated, an
            # in-memory broker restarted); its old chunk will never complete.
            if chunk is None or not chunk.first_offset <= offsets[first] < chunk.end_offset:
                chunk = self.start(source, partition, Chunk.start(offsets[first], self.size))
            last = bisect_left(offsets, chunk.end_offset, lo=first)
            chunk.advance(offsets[last - 1] + 1)
            if chunk.complete:
                del self.open[key]
            yield chunk, first, last
            first = last

    def resume(self, source: str, partition: int, offset: int) -> None:
        """Where a partition resumes: its committed offset, a chunk boundary of the chunk size the
        group ran with. One cut at another size (a smaller one, before an upgrade) opens a chunk of
        its own there, with the key and the end of the chunk left open at it: the new versions
        replace the old, instead of a chunk of this size also counting its events."""
        if offset % self.size:
            self.start(source, partition, offset)

    def start(self, source: str, partition: int, first_offset: int) -> Chunk:
        """Opens the partition's chunk that begins at `first_offset` and ends where the chunk that
        holds it does: at a resumed offset cut at another chunk size (see `resume`), the chunk
        left open there is replaced by one with its first offset and its key."""
        end = Chunk.start(first_offset, self.size) + self.size
        chunk = self.open[(source, partition)] = Chunk(self.analyzer, self.windowing, source, partition,
                                                       first_offset, end - first_offset)
        return chunk
