"""Window assembly from cumulative chunk partials: exactly once, whoever reads which partition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from conftest import live
from prometheus_client import CollectorRegistry

from monitor.config import KafkaSettings, Topics, WindowSettings, WorkerConfig
from monitor.core.analyzer import Analyzer
from monitor.core.columns import Columns
from monitor.core.profile import Profile
from monitor.core.sketch import as_array, packed
from monitor.core.windows import Assembler, Partial, Position, Progress, RenewBaseline, Windowing
from monitor.export.metrics import Metrics
from monitor.stream.chunks import Chunk, OpenChunks
from monitor.stream.merger import Merger

PARTITIONS, PER_PARTITION, CHUNK = 3, 900, 250
WINDOWING = Windowing(seconds=1.0)


def stream(rng_seed: int = 0) -> dict[int, tuple[Columns, np.ndarray]]:
    """Per partition: its events' columns and record timestamps (ms), 300 events a second."""
    rng = np.random.default_rng(rng_seed)
    return {p: (live(rng, PER_PARTITION), np.arange(PER_PARTITION) * 1000 // 300 + p) for p in range(PARTITIONS)}


def read(analyzer: Analyzer, data: tuple[Columns, np.ndarray], partition: int, start: int, stop: int,
         batch: int, size: int = CHUNK) -> list[Partial]:
    """What a worker sends while reading offsets [start, stop) in batches (resuming at `start`, as
    after a commit there): a partial per batch and chunk."""
    columns, timestamps = data
    chunks = OpenChunks(analyzer, WINDOWING, size)
    chunks.resume("requests", partition, start)
    sent = []
    for offset in range(start, stop, batch):
        offsets = list(range(offset, min(offset + batch, stop)))
        for chunk, first, last in chunks.runs("requests", partition, offsets):
            rows = slice(offsets[first], offsets[last - 1] + 1)
            chunk.add({k: v[rows] for k, v in columns.items()}, np.arange(rows.start, rows.stop), timestamps[rows],
                      "requests")
            sent.append(chunk.partial())
    return sent


def idle(partitions: int, caught_up: bool = True, seconds: float = 5) -> Progress:
    """A reader's word that it has read every partition to its end and nothing new for `seconds`."""
    return Progress(tuple(Position("requests", p, caught_up, seconds) for p in range(partitions)))


def assemble(analyzer: Analyzer, partials: list[Partial]) -> dict[int, tuple[int, dict, int]]:
    assembler = Assembler({}, analyzer.sketcher.empty(), {"requests": PARTITIONS}, idle_seconds=5)
    windows = {}
    for partial in partials:
        assembler.add(partial, now=1)
        windows.update({w.key: w for w in assembler.close_ready(now=1)})
    assembler.progress(idle(PARTITIONS), now=10)
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


def test_a_partial_comes_back_from_its_bytes_exactly(small_profile: Profile, data: dict) -> None:
    analyzer = Analyzer(small_profile)
    partials = [p for part in range(PARTITIONS) for p in read(analyzer, data[part], part, 0, PER_PARTITION, 100)]
    for partial in partials:
        back = Partial.from_bytes(partial.to_bytes())
        assert (back.source, back.partition, back.first_offset, back.next_offset, back.complete) == (
            partial.source, partial.partition, partial.first_offset, partial.next_offset, partial.complete)
        for window, sketch in partial.windows.items():
            again = back.windows[window]
            for name in ("counts", "sums", "squares", "sources"):
                for key, array in getattr(sketch, name).items():
                    copy = getattr(again, name)[key]
                    assert copy.dtype == array.dtype and copy.flags.writeable  # merged in place later
                    np.testing.assert_array_equal(copy, array)
            np.testing.assert_array_equal(again.slices, sketch.slices)
            np.testing.assert_array_equal(again.slice_outcomes, sketch.slice_outcomes)
            assert (again.events, again.gaps) == (sketch.events, sketch.gaps)
        for window, blocks in partial.blocks.items():
            for name, counts in blocks.counts.items():
                np.testing.assert_array_equal(back.blocks[window].counts[name], counts)
                np.testing.assert_array_equal(back.blocks[window].ends[name], blocks.ends[name])
    assert assemble(analyzer, [Partial.from_bytes(p.to_bytes()) for p in partials]) == assemble(analyzer, partials)


@pytest.mark.parametrize("values", [[0, 1 << 40], [-(1 << 62), 3], [-1, 255], [], [[0.1, np.nan], [-np.inf, 1e300]]])
def test_packed_arrays_keep_every_value(values: list) -> None:
    array = np.array(values, dtype=np.float64 if values and isinstance(values[0], list) else np.int64)
    back = as_array(orjson.loads(orjson.dumps(array, default=packed)), array.dtype.type)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)  # NaN as NaN


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
    assembler = Assembler({}, analyzer.sketcher.empty(), {"requests": 1}, idle_seconds=5)
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
    return Assembler({}, analyzer.sketcher.empty(), {"requests": 1}, idle_seconds=5), chunk


def test_events_for_a_closed_window_are_counted_late(small_profile: Profile, data: dict) -> None:
    analyzer = Analyzer(small_profile)
    columns, _ = data[0]
    assembler, chunk = one_partition(analyzer, data, 100)
    assembler.add(chunk.partial(), now=0)
    assembler.progress(idle(1), now=6)
    assert [w.key for w in assembler.close_ready(now=6)] == [0]
    chunk.add({k: v[100:103] for k, v in columns.items()}, np.arange(100, 103), np.zeros(3, dtype=np.int64),
              "requests")
    chunk.advance(103)
    assert assembler.add(chunk.partial(), now=7) == 3
    assert assembler.late_events() == 3


def test_the_assembler_state_survives_a_restart(small_profile: Profile, data: dict) -> None:
    analyzer = Analyzer(small_profile)
    partials = [p for part in range(PARTITIONS) for p in read(analyzer, data[part], part, 0, PER_PARTITION, 100)]
    store: dict = {}
    assembler = Assembler(store, analyzer.sketcher.empty(), {"requests": PARTITIONS}, idle_seconds=5)
    half = len(partials) // 2
    for partial in partials[:half]:
        assembler.add(partial, now=1)
    closed = {w.key: w.sketch.events for w in assembler.close_ready(now=1)}
    restarted = Assembler(store, analyzer.sketcher.empty(), {"requests": PARTITIONS}, idle_seconds=5)
    for partial in partials[half:]:
        restarted.add(partial, now=3)
    closed |= {w.key: w.sketch.events for w in restarted.close_ready(now=3)}
    restarted.progress(idle(PARTITIONS), now=20)
    closed |= {w.key: w.sketch.events for w in restarted.close_ready(now=20)}
    assert sum(closed.values()) == PARTITIONS * PER_PARTITION


def test_a_word_of_idleness_replayed_after_a_takeover_closes_no_window(small_profile: Profile, data: dict) -> None:
    """A merger that takes the state over replays the sketches topic from its last commit: the
    idleness a reader reported before it read more (or died) comes again, and must not close the
    window whose events that reader, or its successor, has not sent yet."""
    analyzer = Analyzer(small_profile)
    store: dict = {}
    before, chunk = one_partition(analyzer, data, 100)
    before.store = store
    before.add(chunk.partial(), now=0)
    restarted = Assembler(store, analyzer.sketcher.empty(), {"requests": 1}, idle_seconds=5, opened=100)
    restarted.progress(idle(1), now=100.5)  # the replay: idle then, and caught up with what it had
    assert restarted.close_ready(now=104) == []
    assert restarted.close_ready(now=106) == []  # not fresh ever: it was heard as the state reopened
    restarted.progress(idle(1), now=106)  # the live reader's word
    assert [w.sketch.events for w in restarted.close_ready(now=106)] == [100]


def test_a_group_that_resumes_with_larger_chunks_counts_every_event_once(small_profile: Profile,
                                                                         data: dict) -> None:
    """An upgrade from chunks of 200 to 400 (the default went from 5,000 to 10,000): the group
    committed at 600, the end of a chunk of 200, with the chunk from 600 open in the merger. The
    new workers resume there in a chunk of their own, [600, 800), that replaces the open one: the
    windows count what one deployment would (in more chunks)."""
    analyzer = Analyzer(small_profile)
    before = [p for part in range(PARTITIONS) for p in read(analyzer, data[part], part, 0, 700, 100, size=200)]
    after = [p for part in range(PARTITIONS) for p in read(analyzer, data[part], part, 600, PER_PARTITION, 100,
                                                            size=400)]
    once = [p for part in range(PARTITIONS) for p in read(analyzer, data[part], part, 0, PER_PARTITION, 100,
                                                           size=400)]
    counted = {key: window[:2] for key, window in assemble(analyzer, before + after).items()}
    assert counted == {key: window[:2] for key, window in assemble(analyzer, once).items()}


def test_a_partition_holds_its_window_until_its_reader_says_it_is_idle(small_profile: Profile, data: dict) -> None:
    analyzer = Analyzer(small_profile)
    assembler, chunk = one_partition(analyzer, data, CHUNK)
    assembler.add(chunk.partial(), now=0)
    assert assembler.close_ready(now=60) == []  # never heard from: it may be far behind
    assembler.progress(idle(1, caught_up=False, seconds=60), now=60)
    assert assembler.close_ready(now=60) == []  # behind the end of its partition
    assembler.progress(idle(1, seconds=1), now=61)
    assert assembler.close_ready(now=61) == []  # caught up, but not idle long enough yet
    assembler.progress(idle(1, seconds=5), now=65)
    assert [w.sketch.events for w in assembler.close_ready(now=65)] == [CHUNK]


def test_a_stale_word_of_idleness_holds_windows_open(small_profile: Profile, data: dict) -> None:
    # A reader that stalled (or died) said it was idle long ago: what it read since may not be sent yet.
    analyzer = Analyzer(small_profile)
    assembler, chunk = one_partition(analyzer, data, 100)
    assembler.add(chunk.partial(), now=0)
    assembler.progress(idle(1), now=0)
    assert assembler.close_ready(now=60) == []
    assembler.progress(idle(1), now=60)
    assert [w.sketch.events for w in assembler.close_ready(now=60)] == [100]


def test_after_a_start_behind_a_backlog_no_window_closes_early(small_profile: Profile, data: dict) -> None:
    # Partition 0 has caught up; partition 1's reader has not reported yet, then reports it is behind.
    analyzer = Analyzer(small_profile)
    assembler = Assembler({}, analyzer.sketcher.empty(), {"requests": 2}, idle_seconds=5)
    for partial in read(analyzer, data[0], 0, 0, PER_PARTITION, 100):
        assembler.add(partial, now=1)
    assembler.progress(Progress((Position("requests", 0, True, 30),)), now=30)
    assert assembler.close_ready(now=30) == []
    assembler.progress(Progress((Position("requests", 0, True, 30), Position("requests", 1, False, 30))), now=31)
    assert assembler.close_ready(now=31) == []
    for partial in read(analyzer, data[1], 1, 0, PER_PARTITION, 100):
        assembler.add(partial, now=1)
    closed = assembler.close_ready(now=32)
    assert [w.key for w in closed] == [0, 1000]  # partition 1 has moved past both
    assert sum(w.sketch.events for w in closed) == sum(int((data[p][1] < 2000).sum()) for p in (0, 1))
    assert assembler.late_events() == 0


def test_a_partition_that_reads_again_is_no_longer_idle(small_profile: Profile, data: dict) -> None:
    # Traffic starts after a quiet spell: the first partial follows a word of idleness, which no longer holds.
    analyzer = Analyzer(small_profile)
    assembler, chunk = one_partition(analyzer, data, 100)
    assembler.progress(idle(1, seconds=30), now=30)
    assembler.add(chunk.partial(), now=0)
    assert assembler.close_ready(now=30) == []
    assembler.progress(idle(1, seconds=0.5), now=31)
    assert assembler.close_ready(now=31) == []


def test_an_idle_partition_releases_a_window_only_once_a_later_one_has_been_open_a_while(
        small_profile: Profile, data: dict) -> None:
    # Partition 1's reader calls it idle from a fetch made before its events for window 0 arrived.
    analyzer = Analyzer(small_profile)
    assembler = Assembler({}, analyzer.sketcher.empty(), {"requests": 2}, idle_seconds=5)
    for partial in read(analyzer, data[0], 0, 0, 600, 600):  # windows 0 and 1000
        assembler.add(partial, now=0)
    assembler.progress(Progress((Position("requests", 1, True, 30),)), now=0)
    assert assembler.close_ready(now=0) == []
    assembler.progress(Progress((Position("requests", 1, True, 35),)), now=5)
    assert [w.key for w in assembler.close_ready(now=5)] == [0]


def test_a_chunk_reread_after_its_window_closed_is_not_late(small_profile: Profile, data: dict) -> None:
    # The worker died after its last version was merged, before it committed: it sends the chunk again.
    analyzer = Analyzer(small_profile)
    assembler = Assembler({}, analyzer.sketcher.empty(), {"requests": 1}, idle_seconds=5)
    first = read(analyzer, data[0], 0, 0, PER_PARTITION, 100)
    for partial in first:
        assembler.add(partial, now=0)
    assembler.progress(idle(1), now=10)
    assert sum(w.sketch.events for w in assembler.close_ready(now=10)) == PER_PARTITION
    again = read(analyzer, data[0], 0, 2 * CHUNK, PER_PARTITION, 100)  # from the last commit it had
    assert [assembler.add(partial, now=11) for partial in again] == [0] * len(again)
    assert assembler.late_events() == 0


def test_the_merger_judges_closed_windows_and_a_successor_reports_them(small_profile: Profile, data: dict,
                                                                       tmp_path: Path) -> None:
    config = WorkerConfig(profile=tmp_path / "profile.json", topics=Topics(requests="requests"),
                          window=WindowSettings(idle_seconds=5),
                          kafka=KafkaSettings(partitions=PARTITIONS))
    store: dict = {}
    merger = Merger(config, small_profile, Analyzer(small_profile), Metrics(CollectorRegistry(), "small", 10), store)
    for part in range(PARTITIONS):
        for partial in read(merger.analyzer, data[part], part, 0, PER_PARTITION, 300):
            merger.receive(partial.to_bytes(), now=0)
    merger.receive(idle(PARTITIONS).to_bytes(), now=10)
    status = merger.status()
    assert [w["key"] for w in status["windows"]] == [0, 1000, 2000] and status["late"] == 0
    assert sum(w["events"] for w in status["windows"]) == PARTITIONS * PER_PARTITION
    successor = Merger(config, small_profile, Analyzer(small_profile), Metrics(CollectorRegistry(), "small", 10),
                       store)
    successor.receive(idle(PARTITIONS).to_bytes(), now=11)  # its first message opens the stored state
    assert [(w["key"], w["events"], w["digest"]) for w in successor.status()["windows"]] == [
        (w["key"], w["events"], w["digest"]) for w in status["windows"]]


def test_the_offset_merged_up_to_is_kept_with_the_state(small_profile: Profile, data: dict, tmp_path: Path) -> None:
    # A successor (a restart, a takeover) knows from the state alone which sketches messages were
    # merged: Faust's committed offset can lie past messages it skipped. A progress that closes no
    # window changes nothing, and is not recorded (an idle reader sends one every flush).
    config = WorkerConfig(profile=tmp_path / "profile.json", topics=Topics(requests="requests"),
                          window=WindowSettings(idle_seconds=5), kafka=KafkaSettings(partitions=PARTITIONS))
    store: dict = {}

    def merger() -> Merger:
        return Merger(config, small_profile, Analyzer(small_profile), Metrics(CollectorRegistry(), "small", 10), store)

    first = merger()
    assert first.next_offset(2) is None
    partials = read(first.analyzer, data[0], 0, 0, PER_PARTITION, 300)
    for offset, partial in enumerate(partials, start=40):
        first.receive(partial.to_bytes(), now=0, partition=2, offset=offset)
    assert (merger().next_offset(2), merger().next_offset(1)) == (40 + len(partials), None)
    first.receive(idle(PARTITIONS).to_bytes(), now=1, partition=2, offset=70)  # idle too briefly: nothing closes
    assert (first.next_offset(2), merger().next_offset(2)) == (71, 40 + len(partials))
    first.receive(idle(PARTITIONS).to_bytes(), now=10, partition=2, offset=71)
    assert first.status()["windows"] and merger().next_offset(2) == 72


def test_a_log_that_begins_again_is_read_as_new_traffic(small_profile: Profile, data: dict) -> None:
    # The topic was recreated (or an in-memory broker restarted): offsets start at 0 again, with
    # newer events. Its chunks are not rereads of the old log's, though their offsets are.
    analyzer = Analyzer(small_profile)
    assembler = Assembler({}, analyzer.sketcher.empty(), {"requests": 1}, idle_seconds=5)
    for partial in read(analyzer, data[0], 0, 0, PER_PARTITION, 100):
        assembler.add(partial, now=0)
    assembler.progress(idle(1), now=10)
    assert sum(w.sketch.events for w in assembler.close_ready(now=10)) == PER_PARTITION
    columns, stamps = data[0]
    later = (columns, stamps + 3_600_000)
    for partial in read(analyzer, later, 0, 0, PER_PARTITION, 100):
        assembler.add(partial, now=20)
    assembler.progress(idle(1), now=30)
    assert sum(w.sketch.events for w in assembler.close_ready(now=30)) == PER_PARTITION
    assert assembler.late_events() == 0


def test_offsets_below_the_open_chunk_open_a_new_one() -> None:
    chunks = OpenChunks(None, WINDOWING, size=10)  # type: ignore[arg-type]
    assert [c.first_offset for c, _, _ in chunks.runs("t", 0, [13, 14])] == [10]
    assert [(c.first_offset, c.next_offset) for c, _, _ in chunks.runs("t", 0, [0, 1])] == [(0, 2)]


def test_the_merger_takes_its_organic_baseline_and_judges_drift_against_it(small_profile: Profile,
                                                                           tmp_path: Path) -> None:
    # Real traffic sits far from the synthetic data on `amount` from the start (a standing gap).
    rng = np.random.default_rng(21)
    traffic = {p: (live(rng, 3000, shift=1.0), np.arange(3000) * 1000 // 300 + p) for p in range(PARTITIONS)}
    config = WorkerConfig(profile=tmp_path / "profile.json", topics=Topics(requests="requests"),
                          window=WindowSettings(idle_seconds=5), kafka=KafkaSettings(partitions=PARTITIONS),
                          baseline_events=1800)
    store: dict = {}
    registry = CollectorRegistry()
    merger = Merger(config, small_profile, Analyzer(small_profile), Metrics(registry, "small", 10), store)
    for part in range(PARTITIONS):
        for partial in read(merger.analyzer, traffic[part], part, 0, 3000, 300):
            merger.receive(partial.to_bytes(), now=0)
    merger.receive(idle(PARTITIONS).to_bytes(), now=10)
    status = merger.status()
    windows = status["windows"]
    assert [w["reference"] for w in windows] == ["synthetic"] * 2 + ["organic"] * 8
    assert windows[0]["worst"] == "critical" and all(w["worst"] == "ok" for w in windows[2:])
    assert status["reference"] == "organic" and status["baseline"] == {"events": 1800, "of": 1800, "taken": True}
    # The standing gap, live at /status: the last window against the synthetic profile.
    assert any(r["feature"] == "amount" and r["segment"] is None and r["severity"] == "critical"
               for r in status["reality_gap"])
    standing = registry.get_sample_value("synthdrift_reality_gap_standing_psi",
                                         {"model": "small", "feature": "amount", "segment": "all"})
    assert standing is not None and standing > 0.25
    successor = Merger(config, small_profile, Analyzer(small_profile), Metrics(CollectorRegistry(), "small", 10),
                       store)
    successor.receive(idle(PARTITIONS).to_bytes(), now=11)  # a restart: the baseline comes back with the state
    assert successor.status()["reference"] == "organic"
    successor.receive(RenewBaseline().to_bytes(), now=12)
    assert successor.status()["reference"] == "synthetic"
    assert successor.status()["baseline"] == {"events": 0, "of": 1800, "taken": False}
