"""The traffic reader: Kafka batches -> validated events -> joins -> cumulative chunk partials.

Traffic (requests, predictions, feedback) is read in batches by a plain aiokafka consumer, never
message by message through Faust (~3,000 messages/s there, ~100,000 in a batch loop). Each slice
is validated and sketched with NumPy into the cumulative partial of its partition's chunk, sent to
the merger as it grows; bad events go to the dead-letter topic with their reason. Offsets are
committed at chunk boundaries once the chunk's last version was delivered: see `monitor.core.windows`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from bisect import bisect_left
from operator import attrgetter
from typing import Any, Awaitable, Callable

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from faust.types import TopicT

from monitor.config import WorkerConfig
from monitor.core.analyzer import Analyzer
from monitor.core.columns import Columns, concatenate
from monitor.core.events import SLICE_EVENTS, EventParser, Invalid, to_columns
from monitor.core.spec import Spec
from monitor.core.windows import Position, Progress
from monitor.export.metrics import Metrics
from monitor.stream.chunks import Chunk, OpenChunks
from monitor.stream.join import JoinBuffer
from monitor.stream.topics import ensure_topics, sources, topics_to_create

log = logging.getLogger("synthdrift.reader")
OFFSET = attrgetter("offset")
# A loop that has not polled for this long may not have fetched what arrived meanwhile: its
# partitions' idle clocks start again.
STALL_SECONDS = 1.0
RETRY_SECONDS = 1.0  # after a failed delivery, before reading again from the last commit
COMPLAIN_SECONDS = 30.0  # one log line at most this often while Kafka keeps failing
# The original value and key a dead letter carries, at most: the original may be as large as the
# broker takes, and the dead letter adds headers; its source topic, partition and offset still
# point at the whole of it.
DEAD_LETTER_BYTES = 512 << 10


class TrafficReader(ConsumerRebalanceListener):
    """Reads the traffic topics in batches and sends each partition's chunk partials to the merger."""

    def __init__(self, config: WorkerConfig, spec: Spec, analyzer: Analyzer, metrics: Metrics, app_id: str,
                 sketches: TopicT, on_log_lost: Callable[[list[TopicPartition]], Awaitable[None]]) -> None:
        self.config = config
        self.on_log_lost = on_log_lost
        self.spec = spec
        self.metrics = metrics
        self.app_id = app_id
        self.sketches = sketches
        self.key = spec.model.encode()
        self.sources = sources(config.topics, spec)
        self.assigned: set[TopicPartition] = set()
        self.assignments = 0  # partition assignments so far: a batch fetched before the last is stale
        # Without joins, requests are only ever columns: typed structs, decoded in one pass.
        self.parsers = {stream: EventParser(spec, stream, config.max_event_bytes, structs=len(self.sources) == 1)
                        for stream in self.sources.values()}
        self.join = JoinBuffer(config.join.ttl_seconds, config.join.max_pending, config.join.max_bytes)
        self.chunks = OpenChunks(analyzer, config.window.windowing(config.kafka.partitions), config.window.chunk_events)
        self.heard: dict[TopicPartition, float] = {}  # per partition, when a poll last returned records
        self.rebuild_until: dict[TopicPartition, int] = {}  # offsets below: already counted, for joins only
        # With joins, events reread before a resume point into the join buffer only.
        self.lookback = config.join.rebuild_events if len(self.sources) > 1 else 0
        self.pending: list[Awaitable[Any]] = []  # partials and dead letters not yet acknowledged
        self.commits: dict[TopicPartition, int] = {}  # chunks completed, committed once `pending` is settled
        self.finals: dict[TopicPartition, Awaitable[Any]] = {}  # the delivery of each partition's last complete chunk
        self.committed: set[TopicPartition] = set()  # partitions this process has committed offsets for
        # Per partition, one past the last offset counted in the metrics: records reread after a
        # rewind or a rebalance are sketched again (partials replace) but not counted again.
        self.counted: dict[TopicPartition, int] = {}
        self.failures = 0  # Kafka failures since the last log line
        self.complained = 0.0
        self.settled = time.monotonic()  # when every partial and dead letter sent was last acknowledged
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None

    async def run(self) -> None:
        options = self.config.kafka.client_options()
        self.consumer = AIOKafkaConsumer(
            group_id=f"{self.app_id}.traffic", enable_auto_commit=False, auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),  # co-partitioned topics: joins stay local
            session_timeout_ms=10_000, heartbeat_interval_ms=1_000, max_partition_fetch_bytes=4 << 20,
            **options)
        self.producer = AIOKafkaProducer(linger_ms=5, **options)
        self.consumer.subscribe(list(self.sources), listener=self)
        # A batch allocates a few containers per event that live until it is sketched: with the
        # default thresholds the collector runs every 700 of them and its full passes rescan all
        # that start-up made (profile, Faust). Set that aside and collect less often.
        gc.freeze()
        gc.set_threshold(20_000, 20, 100)
        await self.consumer.start()
        await self.producer.start()
        try:
            flushed = polled = time.monotonic()
            rewind = False
            while True:
                try:
                    if rewind:  # in the loop: rewinding asks Kafka for the commits, and may fail too
                        await self._rewind()
                        rewind = False
                    assignment = self.assignments
                    batches = await self.consumer.getmany(timeout_ms=200, max_records=20_000)
                    now = time.monotonic()
                    if now - polled > STALL_SECONDS:
                        self.heard = dict.fromkeys(self.heard, now)
                    polled = now
                    for tp, records in batches.items():
                        if tp not in self.assigned:
                            continue
                        if assignment != self.assignments:
                            # A rebalance came while this batch was fetched or an earlier partition's
                            # chunk sent, and began every chunk again from its commit: these records
                            # would start one in its middle. Read them again from there.
                            self._seek_resume(tp)
                            continue
                        self.heard[tp] = now
                        await self._process(tp, records)
                    self._expire_joins()
                    if time.monotonic() - flushed >= self.config.window.flush_seconds:
                        await self._flush()
                        flushed = time.monotonic()
                except KafkaError as exc:  # the broker is away, or refused a message: never exit
                    self._complain(exc)
                    await asyncio.sleep(RETRY_SECONDS)
                    rewind = True
        finally:
            await self.consumer.stop()
            await self.producer.stop()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self.assigned.discard(tp)
            self.heard.pop(tp, None)
            self.chunks.open.pop(tp, None)  # the next owner rebuilds the chunk from its first offset
            self.commits.pop(tp, None)
            self.finals.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Resumes every partition at the start of its chunk in progress. With joins, it first
        rereads up to `join.rebuild_events` events before that point into the join buffer only, so
        that what was waiting for its other half before a restart or takeover still is."""
        assert self.consumer is not None
        try:  # a broker that lost its topics (deleted, or kept in memory and restarted) gets them back
            await ensure_topics(self.config.kafka.client_options(), topics_to_create(self.config, self.spec))
        except Exception as exc:  # aiokafka's admin client raises several kinds while a broker is away
            self._complain(exc)
        committed_offsets = {tp: await self.consumer.committed(tp) for tp in assigned}
        lost = [tp for tp, offset in committed_offsets.items() if offset is None and tp in self.committed]
        if lost:  # only a broker that lost the log forgets a live group's commits
            await self.on_log_lost(lost)
            return
        self.assignments += 1
        for tp, committed in committed_offsets.items():
            start = committed or 0  # a chunk boundary
            self.chunks.resume(tp.topic, tp.partition, start)
            self.rebuild_until[tp] = start
            self._seek_resume(tp)
            self.heard[tp] = time.monotonic()
            self.assigned.add(tp)

    def _seek_resume(self, tp: TopicPartition) -> None:
        """Reads the partition again from where its assignment resumed it (the lookback before)."""
        assert self.consumer is not None
        self.consumer.seek(tp, max(self.rebuild_until[tp] - self.lookback, 0))

    async def _process(self, tp: TopicPartition, records: list[ConsumerRecord[Any, bytes]]) -> None:
        started = time.perf_counter()
        stream = self.sources[tp.topic]
        rebuilt = bisect_left(records, self.rebuild_until.get(tp, 0), key=OFFSET)  # records come in offset order
        if rebuilt:
            self._rebuild_joins(stream, records[:rebuilt])
            records = records[rebuilt:]
        for chunk, first, last in self.chunks.runs(tp.topic, tp.partition, [r.offset for r in records]):
            self._sketch(tp, stream, chunk, records[first:last])
            if chunk.complete:
                await self._finish(tp, chunk)
        self.metrics.batch_seconds.labels(stream).observe(time.perf_counter() - started)

    def _rebuild_joins(self, stream: str, records: list[ConsumerRecord[Any, bytes]]) -> None:
        """Feeds already counted events to the join buffer: only what stays waiting matters."""
        outcomes = self.join.outcomes.copy()
        now = time.monotonic()
        for event in self.parsers[stream].parse_many([record.value for record in records])[0]:
            if event.get("request_id") is not None:
                self._join(stream, event, now)
        self.join.outcomes = outcomes

    def _sketch(self, tp: TopicPartition, stream: str, chunk: Chunk, records: list[ConsumerRecord[Any, bytes]]) -> None:
        # Parsed a slice at a time, and sketched at once (fewer, larger array operations).
        parts = [self._read(tp, stream, chunk, records[i:i + SLICE_EVENTS])
                 for i in range(0, len(records), SLICE_EVENTS)]
        requests = [part for part in parts if part is not None]
        if requests:
            columns, offsets, stamps = zip(*requests, strict=True)
            chunk.add(concatenate(columns), np.concatenate(offsets), np.concatenate(stamps), "requests")

    def _read(self, tp: TopicPartition, stream: str, chunk: Chunk,
              records: list[ConsumerRecord[Any, bytes]]) -> tuple[Columns, np.ndarray, np.ndarray] | None:
        """Counts a slice of records, sends the invalid ones to the dead letters and adds the
        records joined to the chunk; returns the columns of valid requests, with their offsets and
        record timestamps."""
        events, invalid = self.parsers[stream].parse_many([record.value for record in records])
        counted = self.counted.get(tp, 0)
        for index, reason in invalid.items():  # dead letters are at-least-once: sent again when reread
            self._dead_letter(tp, stream, records[index], reason, count=records[index].offset >= counted)
        kept = [r for i, r in enumerate(records) if i not in invalid] if invalid else records
        offsets = np.fromiter((r.offset for r in kept), np.int64, len(kept))
        stamps = np.fromiter((r.timestamp for r in kept), np.int64, len(kept))
        self.metrics.events.labels(stream, "valid").inc(int((offsets >= counted).sum()))
        self.counted[tp] = max(counted, records[-1].offset + 1)
        if not events:
            return None
        requests = (to_columns(events, self.spec), offsets, stamps) if stream == "requests" else None
        if len(self.sources) == 1:
            return requests  # nothing to join: the profile has no predictions
        joined: dict[str, list[tuple[dict[str, Any], int, int]]] = {"predictions": [], "feedback": []}
        now = time.monotonic()
        derived = self.spec.segment_fields[len(self.spec.segments):]  # languages, identified once
        for row, (event, offset, stamp) in enumerate(zip(events, offsets.tolist(), stamps.tolist(), strict=True)):
            if event.get("request_id") is None:
                continue
            if requests is not None and derived:
                event = {**event, "segments": {**(event.get("segments") or {}),
                                               **{name: requests[0][name][row] for name in derived}}}
            for record in self._join(stream, event, now):
                joined["feedback" if "label" in record else "predictions"].append((record, offset, stamp))
        # A joined record counts where the event that completed it was read.
        for kind, rows in joined.items():
            if rows:
                joined_records, joined_offsets, joined_stamps = zip(*rows, strict=True)
                chunk.add(to_columns(list(joined_records), self.spec), np.asarray(joined_offsets),
                          np.asarray(joined_stamps), kind, events=False)
        return requests

    def _join(self, stream: str, event: dict[str, Any], now: float) -> list[dict[str, Any]]:
        request_id = event["request_id"]
        if stream == "requests":
            return self.join.request(request_id, event.get("features") or {}, event.get("segments") or {},
                                     event.get("provenance"), now)
        if stream == "predictions":
            return self.join.prediction(request_id, event["prediction"], now)
        return self.join.feedback(request_id, event["label"], event.get("provenance"), now)

    def _dead_letter(self, tp: TopicPartition, stream: str, record: ConsumerRecord[Any, bytes],
                     invalid: Invalid, count: bool) -> None:
        assert self.producer is not None
        value, key = record.value, record.key
        headers = [("synthdrift.reason", str(invalid.reason).encode()),
                   ("synthdrift.detail", invalid.detail[:1000].encode()),
                   ("synthdrift.source.topic", tp.topic.encode()),
                   ("synthdrift.source.partition", str(tp.partition).encode()),
                   ("synthdrift.source.offset", str(record.offset).encode())]
        size = len(value or b"") + len(key or b"")
        if size > DEAD_LETTER_BYTES:
            headers.append(("synthdrift.truncated", f"{len(value or b'')} value bytes, {len(key or b'')} key bytes, "
                                                    f"cut to {DEAD_LETTER_BYTES} together".encode()))
            key = key[:DEAD_LETTER_BYTES // 2] if key else key
            value = value[:DEAD_LETTER_BYTES - len(key or b"")] if value else value
        self.pending.append(asyncio.ensure_future(self._deliver(
            self.producer.send(self.config.topics.dlq, value=value, key=key, headers=headers))))
        if count:
            self.metrics.events.labels(stream, "invalid").inc()
            self.metrics.dead_letters.labels(stream, str(invalid.reason)).inc()

    async def _send(self, tp: TopicPartition, chunk: Chunk) -> Awaitable[Any]:
        """Queues the chunk's current version; `_settle` waits for its delivery. A partition's
        next chunk goes out only once its last complete chunk was acknowledged: a delivery that
        failed while a later one went through would leave the merger a later chunk, telling it the
        partition had moved past windows whose events it never got."""
        previous = self.finals.pop(tp, None)  # a complete chunk is never sent again: this is a later one
        if previous is not None:
            await previous  # a KafkaError here sends the loop back to the last commit
        sending = await self.sketches.send(key=self.key, value=chunk.partial().to_bytes())
        self.pending.append(sending)
        chunk.sent_offset = chunk.next_offset
        return sending

    async def _finish(self, tp: TopicPartition, chunk: Chunk) -> None:
        """Sends a complete chunk's last version; its offsets are committed once it is delivered."""
        self.finals[tp] = await self._send(tp, chunk)
        self.commits[tp] = chunk.end_offset

    async def _flush(self) -> None:
        """Sends the chunks that grew since their last version, then this reader's progress on every
        partition it reads (the merger closes windows by it), settles, and sets the lag."""
        assert self.consumer is not None
        for tp in list(self.assigned):
            chunk = self.chunks.open.get(tp)
            if chunk is not None and chunk.next_offset > chunk.sent_offset:
                await self._send(tp, chunk)
        now = time.monotonic()
        positions = []
        lag: dict[str, int] = {}
        for tp in list(self.assigned):
            position, highwater = await self.consumer.position(tp), self.consumer.highwater(tp)
            behind = max(highwater - position, 0) if highwater is not None else 0
            positions.append(Position(tp.topic, tp.partition, caught_up=highwater is not None and not behind,
                                      idle_seconds=now - self.heard.get(tp, now)))
            lag[self.sources[tp.topic]] = lag.get(self.sources[tp.topic], 0) + behind
        # Awaited like the partials: `settled` then means the broker acknowledged, even when idle.
        self.pending.append(await self.sketches.send(key=self.key, value=Progress(tuple(positions)).to_bytes()))
        await self._settle()
        for stream, value in lag.items():
            self.metrics.lag.labels(stream).set(value)

    async def _settle(self) -> None:
        """Waits for every partial and dead letter sent, then commits past the chunks completed:
        a restart never rereads a chunk whose last version was delivered, and rereads the others."""
        assert self.consumer is not None
        if self.pending:
            outcomes = await asyncio.gather(*self.pending, return_exceptions=True)
            self.pending.clear()
            failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
            if failed is not None:
                raise failed  # a KafkaError makes the loop read again from the last commit
        self.settled = time.monotonic()
        if self.commits:
            try:
                await self.consumer.commit(self.commits)
                self.committed.update(self.commits)
            except (CommitFailedError, IllegalStateError) as exc:  # a rebalance took the partitions away
                log.info("commit skipped, the next owner rereads those chunks: %s", exc)
            self.commits.clear()

    async def _rewind(self) -> None:
        """After a failed delivery: every partition back to its last commit, as after a restart.
        The chunks reread rebuild the very partials that were lost, and replace any that arrived."""
        self.pending.clear()
        self.commits.clear()
        self.finals.clear()
        for tp in self.assigned:
            self.chunks.open.pop(tp, None)
        await self.on_partitions_assigned(list(self.assigned))

    def _complain(self, exc: Exception) -> None:
        now = time.monotonic()
        self.failures += 1
        if now - self.complained >= COMPLAIN_SECONDS:
            log.error("Kafka failed %d times in %.0f s, reading again from the last commit; the last failure: %r",
                      self.failures, now - self.complained if self.complained else 0.0, exc)
            self.complained, self.failures = now, 0

    @staticmethod
    async def _deliver(sending: Any) -> Any:
        return await (await sending)  # queued, then acknowledged by the broker

    def _expire_joins(self) -> None:
        self.join.expire(time.monotonic())
        for (kind, outcome), count in self.join.outcomes.items():
            if count:
                self.metrics.joins.labels(kind, outcome).inc(count)
        self.join.outcomes.clear()
