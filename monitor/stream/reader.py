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
from typing import Any, Awaitable

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError
from faust.types import TopicT

from monitor.config import WorkerConfig
from monitor.core.analyzer import Analyzer
from monitor.core.columns import Columns, concatenate
from monitor.core.events import SLICE_EVENTS, EventParser, Invalid, to_columns
from monitor.core.spec import Spec
from monitor.export.metrics import Metrics
from monitor.stream.chunks import Chunk, OpenChunks
from monitor.stream.join import JoinBuffer
from monitor.stream.topics import sources

log = logging.getLogger("synthdrift.reader")
OFFSET = attrgetter("offset")
TICK = b'{"tick": true}'  # tells the merger that time passed, so idle windows can close


class TrafficReader(ConsumerRebalanceListener):
    """Reads the traffic topics in batches and sends each partition's chunk partials to the merger."""

    def __init__(self, config: WorkerConfig, spec: Spec, analyzer: Analyzer, metrics: Metrics, app_id: str,
                 sketches: TopicT) -> None:
        self.config = config
        self.spec = spec
        self.metrics = metrics
        self.app_id = app_id
        self.sketches = sketches
        self.key = spec.model.encode()
        self.sources = sources(config.topics, spec)
        self.assigned: set[TopicPartition] = set()
        self.parsers = {stream: EventParser(spec, stream, config.max_event_bytes) for stream in self.sources.values()}
        self.join = JoinBuffer(config.join.ttl_seconds, config.join.max_pending)
        self.chunks = OpenChunks(analyzer, config.window.windowing(config.kafka.partitions), config.window.chunk_events)
        # Per partition, the next offset and caught-up status of the last partial sent.
        self.sent: dict[TopicPartition, tuple[int, bool]] = {}
        self.rebuild_until: dict[TopicPartition, int] = {}  # offsets below: already counted, for joins only
        self.pending: list[Awaitable[Any]] = []  # partials and dead letters not yet acknowledged
        self.commits: dict[TopicPartition, int] = {}  # chunks completed, committed once `pending` is settled
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
            flushed = time.monotonic()
            while True:
                batches = await self.consumer.getmany(timeout_ms=200, max_records=20_000)
                for tp, records in batches.items():
                    if tp in self.assigned:
                        await self._process(tp, records)
                self._expire_joins()
                if time.monotonic() - flushed >= self.config.window.flush_seconds:
                    await self._flush()
                    flushed = time.monotonic()
        finally:
            await self.consumer.stop()
            await self.producer.stop()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self.assigned.discard(tp)
            self.chunks.open.pop(tp, None)  # the next owner rebuilds the chunk from its first offset
            self.commits.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Resumes every partition at the start of its chunk in progress. With joins, it first
        rereads up to `join.rebuild_events` events before that point into the join buffer only, so
        that what was waiting for its other half before a restart or takeover still is."""
        assert self.consumer is not None
        size = self.config.window.chunk_events
        lookback = self.config.join.rebuild_events if len(self.sources) > 1 else 0
        for tp in assigned:
            committed = await self.consumer.committed(tp)
            start = Chunk.start(committed, size) if committed else 0
            self.consumer.seek(tp, max(start - lookback, 0))
            self.rebuild_until[tp] = start
            self.sent.pop(tp, None)
            self.assigned.add(tp)

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
        for index, reason in invalid.items():
            self._dead_letter(tp, stream, records[index], reason)
        kept = [r for i, r in enumerate(records) if i not in invalid] if invalid else records
        offsets = np.fromiter((r.offset for r in kept), np.int64, len(kept))
        stamps = np.fromiter((r.timestamp for r in kept), np.int64, len(kept))
        self.metrics.events.labels(stream, "valid").inc(len(events))
        if not events:
            return None
        requests = (to_columns(events, self.spec), offsets, stamps) if stream == "requests" else None
        if len(self.sources) == 1:
            return requests  # nothing to join: the profile has no predictions
        joined: dict[str, list[tuple[dict[str, Any], int, int]]] = {"predictions": [], "feedback": []}
        now = time.monotonic()
        for event, offset, stamp in zip(events, offsets.tolist(), stamps.tolist(), strict=True):
            if event.get("request_id") is None:
                continue
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
            return self.join.request(request_id, event.get("segments") or {}, now)
        if stream == "predictions":
            return self.join.prediction(request_id, event["prediction"], now)
        return self.join.feedback(request_id, event["label"], event.get("provenance"), now)

    def _dead_letter(self, tp: TopicPartition, stream: str, record: ConsumerRecord[Any, bytes],
                     invalid: Invalid) -> None:
        assert self.producer is not None
        headers = [("synthdrift.reason", str(invalid.reason).encode()),
                   ("synthdrift.detail", invalid.detail[:1000].encode()),
                   ("synthdrift.source.topic", tp.topic.encode()),
                   ("synthdrift.source.partition", str(tp.partition).encode()),
                   ("synthdrift.source.offset", str(record.offset).encode())]
        self.pending.append(asyncio.ensure_future(self._deliver(
            self.producer.send(self.config.topics.dlq, value=record.value, key=record.key, headers=headers))))
        self.metrics.events.labels(stream, "invalid").inc()
        self.metrics.dead_letters.labels(stream, str(invalid.reason)).inc()

    def _caught_up(self, tp: TopicPartition, next_offset: int) -> bool:
        assert self.consumer is not None
        highwater = self.consumer.highwater(tp)
        return highwater is None or next_offset >= highwater

    async def _send(self, tp: TopicPartition, chunk: Chunk) -> None:
        """Queues the chunk's current version; `_settle` waits for its delivery."""
        caught_up = self._caught_up(tp, chunk.next_offset)
        self.pending.append(await self.sketches.send(key=self.key, value=chunk.partial(caught_up).to_bytes()))
        self.sent[tp] = (chunk.next_offset, caught_up)

    async def _finish(self, tp: TopicPartition, chunk: Chunk) -> None:
        """Sends a complete chunk's last version; its offsets are committed once it is delivered."""
        await self._send(tp, chunk)
        self.commits[tp] = chunk.end_offset

    async def _flush(self) -> None:
        """Sends what the merger has not heard yet: chunks that grew since their last version, and
        partitions that have caught up since (the merger waits for them to close a window). Then a
        tick for idle windows, and settles."""
        assert self.consumer is not None
        for tp in list(self.assigned):
            sent = self.sent.get(tp)
            chunk = self.chunks.open.get(tp)
            if chunk is None:
                if sent is None or sent[1] or not self._caught_up(tp, sent[0]):
                    continue
                # The last chunk completed before the partition caught up: tell the merger with
                # the next chunk, empty so far.
                chunk = self.chunks.start(tp.topic, tp.partition, sent[0])
            if sent is None or chunk.next_offset > sent[0] or (not sent[1] and self._caught_up(tp, chunk.next_offset)):
                await self._send(tp, chunk)
        await self.sketches.send(key=self.key, value=TICK)
        await self._settle()
        lag: dict[str, int] = {}
        for tp in self.assigned:
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                stream = self.sources[tp.topic]
                lag[stream] = lag.get(stream, 0) + max(highwater - await self.consumer.position(tp), 0)
        for stream, value in lag.items():
            self.metrics.lag.labels(stream).set(value)

    async def _settle(self) -> None:
        """Waits for every partial and dead letter sent, then commits past the chunks completed:
        a restart never rereads a chunk whose last version was delivered, and rereads the others."""
        assert self.consumer is not None
        if self.pending:
            await asyncio.gather(*self.pending)
            self.pending.clear()
        if self.commits:
            try:
                await self.consumer.commit(self.commits)
            except (CommitFailedError, IllegalStateError) as exc:  # a rebalance took the partitions away
                log.info("commit skipped, the next owner rereads those chunks: %s", exc)
            self.commits.clear()

    @staticmethod
    async def _deliver(sending: Any) -> Any:
        return await (await sending)  # queued, then acknowledged by the broker

    def _expire_joins(self) -> None:
        self.join.expire(time.monotonic())
        for (kind, outcome), count in self.join.outcomes.items():
            if count:
                self.metrics.joins.labels(kind, outcome).inc(count)
        self.join.outcomes.clear()
