"""Window assembly from cumulative chunk partials: exactly once, whoever reads which partition."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import live

from monitor.core.analyzer import Analyzer
from monitor.core.columns import Columns
from monitor.core.profile import Profile
from monitor.core.windows import Assembler, Partial, Windowing
from monitor.stream.chunks import Chunk, OpenChunks

PARTITIONS, PER_PARTITION, CHUNK = 3, 900, 250
WINDOWING = Windowing(seconds=1.0)


def stream(rng_seed: int = 0) -> dict[int, tuple[Columns, np.ndarray]]:
    """Per partition: its events' columns and record timestamps (ms), 300 events a second."""
    rng = np.random.default_rng(rng_seed)
    return {p: (live(rng, PER_PARTITION), np.arange(PER_PARTITION) * 1000 // 300 + p) for p in range(PARTITIONS)}


def read(analyzer: Analyzer, data: tuple[Columns, np.ndarray], partition: int, start: int, stop: int,
         batch: int) -> list[Partial]:
    """What a worker sends while reading offsets [start, stop) in batches: a partial per batch and chunk."""
    columns, timestamps = data
    chunks = OpenChunks(analyzer, WINDOWING, CHUNK)
    sent = []
    for offset in range(start, stop, batch):
        offsets = list(range(offset, min(offset + batch, stop)))
        for chunk, first, last in chunks.runs("requests", partition, offsets):
            rows = slice(offsets[first], offsets[last - 1] + 1)
            chunk.add({k: v[rows] for k, v in columns.items()}, np.arange(rows.start, rows.stop), timestamps[rows],
                      "requests")
            sent.append(chunk.partial(caught_up=chunk.next_offset == PER_PARTITION))
    return sent


def assemble(analyzer: Analyzer, partials: list[Partial]) -> dict[int, tuple[int, dict, int]]:
    assembler = Assembler({}, analyzer.sketcher.empty(), {"requests": PARTITIONS}, idle_seconds=5, now=0)
    windows = {}
    for partial in partials:
        assembler.add(partial, now=1)
        windows.update({w.key: w for w in assembler.close_ready(now=1)})
    windows.update({w.key: w for w in assembler.close_ready(now=10)})
    return {k: (w.sketch.events, {n: c.tolist() for n, c in w.sketch.counts.items()}, len(w.blocks))
            for k, w in windows.items()}


@pytest.fixture(scope="module")
def data() -> dict[int, tuple[Columns, np.ndarray]]:
    return stream()


def test_every_event_lands_in_exactly_one_window(small_profile: Profile, data: dict) -> None:
    analyzer = Analyzer(small_profile)
    partials = [p for part in range(PARTITIONS) for p in read(analyzer, data[part], part, 0, PER_PARTITION, 100)]
    windows = assemble(analyzer, partials)
    assert sorted(windows) == [0, 1000, 2000]
    assert sum(events for events, _, _ in windows.values()) == PARTITIONS * PER_PARTITION


def test_two_readers_and_other_batch_sizes_give_the_same_windows(small_profile: Profile, data: dict) -> None:
    analyzer = Analyzer(small_profile)
    one = [p for part in range(PARTITIONS) for p in read(analyzer, data[part], part, 0, PER_PARTITION, 100)]
    # Two workers: their partials interleave, and each reads in batches of its own size.
    first = [p for part in (0, 2) for p in read(analyzer, data[part], part, 0, PER_PARTITION, 37)]
    second = read(analyzer, data[1], 1, 0, PER_PARTITION, 301)
    paired = [p for pair in zip(first, second, strict=False) for p in pair]
    interleaved = paired + first[len(second):] + second[len(first):]
    assert assemble(analyzer, interleaved) == assemble(analyzer, one)


def test_a_restart_that_rereads_a_chunk_counts_it_once(small_profile: Profile, data: dict) -> None:
    analyzer = Analyzer(small_profile)
    clean = [p for part in range(PARTITIONS) for p in read(analyzer, data[part], part, 0, PER_PARTITION, 100)]
    # Partition 1's worker dies at offset 430 after sending its partials; the restarted one resumes
    # at the start of the chunk in progress (250: the last commit) and reads to the end.
    before = read(analyzer, data[1], 1, 0, 430, 100)
    after = read(analyzer, data[1], 1, 250, PER_PARTITION, 120)
    others = [p for part in (0, 2) for p in read(analyzer, data[part], part, 0, PER_PARTITION, 100)]
    assert assemble(analyzer, before + others + after) == assemble(analyzer, clean)


def test_a_stale_version_changes_nothing(small_profile: Profile, data: dict) -> None:
    analyzer = Analyzer(small_profile)
    partials = read(analyzer, data[0], 0, 0, PER_PARTITION, 100)
    assembler = Assembler({}, analyzer.sketcher.empty(), {"requests": 1}, idle_seconds=5, now=0)
    for partial in partials:
        assembler.add(partial, now=1)
    state = dict(assembler.store)
    assembler.add(partials[0], now=2)
    assert dict(assembler.store) == state


def one_partition(analyzer: Analyzer, data: dict, read: int) -> tuple[Assembler, Chunk]:
    """An assembler for one partition, and the first chunk of partition 0 with `read` events read."""
    columns, timestamps = data[0]
    chunk = Chunk(analyzer, WINDOWING, "requests", 0, 0, CHUNK)
    chunk.add({k: v[:read] for k, v in columns.items()}, np.arange(read), timestamps[:read], "requests")
    chunk.advance(read)
    return Assembler({}, analyzer.sketcher.empty(), {"requests": 1}, idle_seconds=5, now=0), chunk


def test_events_for_a_closed_window_are_counted_late(small_profile: Profile, data: dict) -> None:
    analyzer = Analyzer(small_profile)
    columns, _ = data[0]
    assembler, chunk = one_partition(analyzer, data, 100)
    assembler.add(chunk.partial(caught_up=True), now=0)
    assert [w.key for w in assembler.close_ready(now=6)] == [0]
    chunk.add({k: v[100:103] for k, v in columns.items()}, np.arange(100, 103), np.zeros(3, dtype=np.int64),
              "requests")
    chunk.advance(103)
    assert assembler.add(chunk.partial(caught_up=True), now=7) == 3
    assert assembler.late_events() == 3


def test_the_assembler_state_survives_a_restart(small_profile: Profile, data: dict) -> None:
    analyzer = Analyzer(small_profile)
    partials = [p for part in range(PARTITIONS) for p in read(analyzer, data[part], part, 0, PER_PARTITION, 100)]
    store: dict = {}
    assembler = Assembler(store, analyzer.sketcher.empty(), {"requests": PARTITIONS}, idle_seconds=5, now=0)
    half = len(partials) // 2
    for partial in partials[:half]:
        assembler.add(partial, now=1)
    closed = {w.key: w.sketch.events for w in assembler.close_ready(now=1)}
    restarted = Assembler(store, analyzer.sketcher.empty(), {"requests": PARTITIONS}, idle_seconds=5, now=2)
    for partial in partials[half:]:
        restarted.add(partial, now=3)
    closed |= {w.key: w.sketch.events for w in restarted.close_ready(now=3)}
    closed |= {w.key: w.sketch.events for w in restarted.close_ready(now=20)}
    assert sum(closed.values()) == PARTITIONS * PER_PARTITION


def test_a_partition_that_catches_up_later_releases_its_window(small_profile: Profile, data: dict) -> None:
    analyzer = Analyzer(small_profile)
    assembler, chunk = one_partition(analyzer, data, CHUNK)
    behind = chunk.partial(caught_up=False)  # sent while the broker still reported more to read
    assembler.add(behind, now=0)
    assert assembler.close_ready(now=60) == []
    # What the worker sends once it sees it has caught up: the next chunk, empty so far.
    assembler.add(Chunk(analyzer, WINDOWING, "requests", 0, CHUNK, CHUNK).partial(caught_up=True), now=60)
    assert assembler.close_ready(now=61) == []  # not idle long enough yet
    assert [w.sketch.events for w in assembler.close_ready(now=66)] == [CHUNK]


def test_a_caught_up_version_is_newer_than_one_that_read_as_far(small_profile: Profile, data: dict) -> None:
    analyzer = Analyzer(small_profile)
    assembler, chunk = one_partition(analyzer, data, 100)
    assembler.add(chunk.partial(caught_up=False), now=0)
    assert assembler.close_ready(now=60) == []
    assembler.add(chunk.partial(caught_up=True), now=60)
    assembler.add(chunk.partial(caught_up=False), now=61)  # a replay of the older version
    assert [w.sketch.events for w in assembler.close_ready(now=66)] == [100]
