"""`synthdrift worker`: the streaming monitor, one Faust app per process.

Two paths, by volume:

- traffic (requests, predictions, feedback) is read in batches by a plain aiokafka consumer
  (`TrafficReader`, a Faust task), validated, joined and sketched with NumPy into the cumulative
  partial of each partition's chunk; bad events go to the dead-letter topic. Faust's per-message
  machinery never sees an event: it handles ~3,000 messages/s, a batch loop ~100,000.
- partials (a few per second) go through the Faust topic `sketches`, keyed by model so that one
  agent merges them (`merge`): the worker that owns that partition closes windows, judges them,
  runs the detectors, sets the metrics and sends alert events. Its state (open chunks, detector
  and alert state) is a Faust table: another worker recovers it from the changelog on takeover.

Delivery is at-least-once; counting is exactly-once: see `monitor.windows`.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import logging
import pickle
import tempfile
import time
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import faust
import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor.alerts import AlertStates
from monitor.analyzer import Analyzer
from monitor.chunks import Chunk
from monitor.columns import Columns
from monitor.config import WorkerConfig
from monitor.events import EventParser, Invalid, to_columns
from monitor.join import JoinBuffer
from monitor.metrics import Metrics
from monitor.profile import Profile
from monitor.severity import Severity
from monitor.statistics import judged_name
from monitor.windows import Assembler, Partial, Window

log = logging.getLogger("synthdrift.worker")
TICK = b'{"tick": true}'
OFFSET = attrgetter("offset")
RECENT_WINDOWS = 50
READ_SLICE = 1000  # records parsed at a time


@dataclass
class Shared:
    """What the traffic reader, the merger and the web views share inside one worker process."""

    config: WorkerConfig
    profile: Profile
    analyzer: Analyzer
    metrics: Metrics
    assigned: set[TopicPartition] = field(default_factory=set)
    assembler: Assembler | None = None
    alert_states: AlertStates | None = None
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT_WINDOWS))

    @property
    def sources(self) -> dict[str, str]:
        """Topic -> stream, for the streams this profile has channels for."""
        spec, topics = self.profile.spec, self.config.topics
        sources = {topics.requests: "requests"}
        if spec.prediction_label or spec.prediction_score:
            sources[topics.predictions] = "predictions"
        if spec.label and spec.prediction_label:
            sources[topics.feedback] = "feedback"
        return sources


def create_app(config: WorkerConfig, profile: Profile) -> faust.App:
    registry = CollectorRegistry()
    shared = Shared(config, profile, Analyzer(profile, config.drift),
                    Metrics(registry, profile.spec.model, config.metrics.top_k_segments))
    shared.metrics.declare_detectors({c.feature for c in shared.analyzer.detectors.channels},
                                     config.drift.detector.kind)
    kafka = config.kafka
    app = faust.App(
        app_id(config, profile),
        broker=[f"kafka://{server}" for server in kafka.bootstrap_servers.split(",")],
        broker_credentials=_credentials(config),
        store="memory://",
        topic_partitions=kafka.partitions,
        datadir=tempfile.mkdtemp(prefix="synthdrift-faust-"),
        web_host=config.metrics.host,
        web_port=config.metrics.port,
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=10,
        broker_session_timeout=10,
        broker_heartbeat_interval=1,
    )
    sketches = app.topic(config.topics.sketches, key_serializer="raw", value_serializer="raw",
                         partitions=kafka.partitions)
    alerts = app.topic(config.topics.alerts, key_serializer="raw", value_serializer="raw",
                       partitions=kafka.partitions)
    state = app.Table("merger", default=None, partitions=kafka.partitions)  # JSON keys and values

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def reset_merger(sender: Any, assigned: Any, **kwargs: Any) -> None:
        shared.assembler = None  # rebuilt from the (recovered) table at the next message
        shared.metrics.forget_windows()  # the merger may have moved: only its owner reports windows

    @app.agent(sketches)
    async def merge(stream: Any) -> None:
        async for raw in stream:
            now = time.monotonic()
            assembler = shared.assembler or _open_merger(shared, state, now)
            if raw != TICK:
                late = assembler.add(Partial.from_bytes(raw), now)
                if late:
                    shared.metrics.events.labels("requests", "late").inc(late)
            for window in assembler.close_ready(now):
                await _judge(shared, window, state, alerts)

    @app.task
    async def read_traffic() -> None:
        await TrafficReader(shared, app.conf.id, sketches).run()

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        # aiohttp sets the charset itself and refuses one inside content_type.
        content_type = CONTENT_TYPE_LATEST.split(";", 1)[0] + "; version=0.0.4"
        names = request.query.getall("name[]", [])  # as prometheus_client's own handler: only these
        return web.bytes(generate_latest(registry.restricted_registry(names) if names else registry),
                         content_type=content_type)

    @app.page("/health")
    async def health_view(web: Any, request: Any) -> Any:
        ready = bool(shared.assigned)
        body = {"ready": ready, "profile": profile.id,
                "partitions": sorted(f"{tp.topic}/{tp.partition}" for tp in shared.assigned)}
        return web.json(body, status=200 if ready else 503)

    @app.page("/status")
    async def status_view(web: Any, request: Any) -> Any:
        states = shared.alert_states.to_json() if shared.alert_states else {}
        return web.json({"profile": profile.id, "windows": list(shared.recent), "alerts": states})

    return app


def app_id(config: WorkerConfig, profile: Profile) -> str:
    """The Faust app id; the traffic consumer group is `<app id>.traffic`."""
    return config.kafka.group_id or f"synthdrift-{profile.spec.model}"


def _credentials(config: WorkerConfig) -> Any:
    kafka = config.kafka
    if kafka.sasl_mechanism:
        return faust.SASLCredentials(username=kafka.sasl_username, password=kafka.sasl_password,
                                     mechanism=kafka.sasl_mechanism,
                                     ssl_context=kafka.client_options().get("ssl_context"))
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(kafka.client_options()["ssl_context"])
    return None


def _open_merger(shared: Shared, state: Any, now: float) -> Assembler:
    partitions = shared.config.kafka.partitions
    shared.assembler = Assembler(state, shared.analyzer.sketcher.empty(),
                                 dict.fromkeys(shared.sources, partitions), shared.config.window.idle_seconds, now)
    detectors = state.get("detectors")
    if detectors is not None:
        shared.analyzer.detectors = pickle.loads(base64.b64decode(detectors))  # our own changelog: trusted
    shared.alert_states = AlertStates(shared.config.alerts, state.get("alerts"))
    return shared.assembler


async def _judge(shared: Shared, window: Window, state: Any, alerts: Any) -> None:
    """Statistics, detectors, metrics and alert events for one closed window."""
    analyzer, metrics, profile = shared.analyzer, shared.metrics, shared.profile
    results = analyzer.evaluate(window.sketch)
    gaps = analyzer.coverage_gaps(window.sketch)
    detections = []
    for source, partition, blocks in window.blocks:
        for detection in analyzer.detectors.update(blocks.counts, blocks.ends):
            detections.append({"feature": detection.feature, "channel": detection.channel,
                               "signal": detection.signal, "detector": detection.detector,
                               "topic": source, "partition": partition, "offset": detection.offset})
            metrics.record_detections([detection])
    ranks = {g.name: i for i, g in enumerate(profile.groups[1:])}
    metrics.record_window(results, gaps, window.sketch.events, shared.config.drift, ranks)
    metrics.record_bins(profile.channels, profile.groups, profile.reference, window.sketch, ranks)
    metrics.last_window.labels(profile.spec.model).set_to_current_time()
    if shared.config.window.seconds and not shared.config.window.events:
        end = (window.key + shared.config.window.seconds * 1000) / 1000
        metrics.window_delay.labels(profile.spec.model).observe(max(time.time() - end, 0.0))
    assert shared.alert_states is not None
    context = {"model": profile.spec.model, "profile": profile.id,
               "window": {"key": window.key, "events": window.sketch.events}}
    events = shared.alert_states.advance(results, context)
    for event in events:
        event["thresholds"] = {b: _threshold(shared, event["feature"], b) for b in event["breaches"]}
        metrics.alerts.labels(profile.spec.model, event["state"]).inc()
        await alerts.send(key=profile.spec.model.encode(), value=orjson.dumps(event))
    state["detectors"] = base64.b64encode(pickle.dumps(analyzer.detectors)).decode()
    state["alerts"] = shared.alert_states.to_json()
    shared.recent.append({
        "key": window.key, "events": window.sketch.events, "digest": window.sketch.digest(),
        "worst": str(max((r.severity for r in results), default=Severity.OK)),
        "results": [r.to_json() for r in results if r.severity > Severity.OK],
        "coverage_gaps": [g.to_json() for g in gaps[:10]], "detections": detections, "alerts": events,
    })
    log.info("window %s: %d events, worst %s, %d alert events", window.key, window.sketch.events,
             shared.recent[-1]["worst"], len(events))


def _threshold(shared: Shared, feature: str, statistic: str) -> dict[str, float]:
    threshold = shared.config.drift.threshold(feature, judged_name(statistic) or statistic)
    return {"warning": threshold.warning, "critical": threshold.critical}


class TrafficReader(ConsumerRebalanceListener):
    """Reads the traffic topics in batches and sends each partition's chunk partials to the merger."""

    def __init__(self, shared: Shared, app_id: str, sketches: Any) -> None:
        self.shared = shared
        self.config = shared.config
        self.app_id = app_id
        self.sketches = sketches
        self.key = shared.profile.spec.model.encode()
        spec = shared.profile.spec
        self.parsers = {stream: EventParser(spec, stream, self.config.max_event_bytes)
                        for stream in shared.sources.values()}
        self.join = JoinBuffer(self.config.join.ttl_seconds, self.config.join.max_pending)
        self.chunks: dict[TopicPartition, Chunk] = {}
        # Per partition, the next offset and caught-up status of the last partial sent.
        self.sent: dict[TopicPartition, tuple[int, bool]] = {}
        self.rebuild_until: dict[TopicPartition, int] = {}  # offsets below: already counted, for joins only
        self.pending: list[asyncio.Future[Any]] = []  # partials and dead letters not yet acknowledged
        self.commits: dict[TopicPartition, int] = {}  # chunks completed, committed once `pending` is settled
        self.windowing = self.config.window.windowing(self.config.kafka.partitions)
        self.consumer: AIOKafkaConsumer | None = None

    async def run(self) -> None:
        options = self.config.kafka.client_options()
        self.consumer = AIOKafkaConsumer(
            group_id=f"{self.app_id}.traffic", enable_auto_commit=False, auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),  # co-partitioned topics: joins stay local
            session_timeout_ms=10_000, heartbeat_interval_ms=1_000, max_partition_fetch_bytes=4 << 20,
            **options)
        self.producer = AIOKafkaProducer(linger_ms=5, **options)
        self.consumer.subscribe(list(self.shared.sources), listener=self)
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
                    if tp in self.shared.assigned:
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
            self.shared.assigned.discard(tp)
            self.chunks.pop(tp, None)  # the next owner rebuilds the chunk from its first offset
            self.commits.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Resumes every partition at the start of its chunk in progress. With joins, it first
        rereads up to `join.rebuild_events` events before that point into the join buffer only, so
        that what was waiting for its other half before a restart or takeover still is."""
        assert self.consumer is not None
        size = self.config.window.chunk_events
        lookback = self.config.join.rebuild_events if len(self.shared.sources) > 1 else 0
        for tp in assigned:
            committed = await self.consumer.committed(tp)
            start = Chunk.start(committed, size) if committed else 0
            self.consumer.seek(tp, max(start - lookback, 0))
            self.rebuild_until[tp] = start
            self.sent.pop(tp, None)
            self.shared.assigned.add(tp)

    async def _process(self, tp: TopicPartition, records: list[Any]) -> None:
        started = time.perf_counter()
        stream = self.shared.sources[tp.topic]
        rebuilt = bisect_left(records, self.rebuild_until.get(tp, 0), key=OFFSET)  # records come in offset order
        if rebuilt:
            self._rebuild_joins(stream, records[:rebuilt])
            records = records[rebuilt:]
        size = self.config.window.chunk_events
        first = 0
        while first < len(records):
            offset = records[first].offset
            chunk = self.chunks.get(tp)
            if chunk is None or offset >= chunk.end_offset:
                chunk = self.chunks[tp] = Chunk(self.shared.analyzer, self.windowing, tp.topic, tp.partition,
                                                Chunk.start(offset, size), size)
            last = bisect_left(records, chunk.end_offset, lo=first, key=OFFSET)
            self._sketch(tp, stream, chunk, records[first:last])
            chunk.advance(records[last - 1].offset + 1)
            first = last
            if chunk.complete:
                await self._finish(tp, chunk)
        self.shared.metrics.batch_seconds.labels(stream).observe(time.perf_counter() - started)

    def _rebuild_joins(self, stream: str, records: list[Any]) -> None:
        """Feeds already counted events to the join buffer: only what stays waiting matters."""
        outcomes = self.join.outcomes.copy()
        now = time.monotonic()
        for event in self.parsers[stream].parse_many([record.value for record in records])[0]:
            if event.get("request_id") is not None:
                self._join(stream, event, now)
        self.join.outcomes = outcomes

    def _sketch(self, tp: TopicPartition, stream: str, chunk: Chunk, records: list[Any]) -> None:
        # Parsed a slice at a time, so that events stay in the CPU cache until they are columns
        # (a quarter faster than whole batches), and sketched at once (fewer, larger array operations).
        parts = [self._read(tp, stream, chunk, records[i:i + READ_SLICE]) for i in range(0, len(records), READ_SLICE)]
        requests = [part for part in parts if part is not None]
        if requests:
            columns, offsets, stamps = zip(*requests)
            chunk.add({name: np.concatenate([c[name] for c in columns]) for name in columns[0]},
                      np.concatenate(offsets), np.concatenate(stamps), "requests")

    def _read(self, tp: TopicPartition, stream: str, chunk: Chunk,
              records: list[Any]) -> tuple[Columns, np.ndarray, np.ndarray] | None:
        """Counts a slice of records, sends the invalid ones to the dead letters and adds the
        records joined to the chunk; returns the columns of valid requests, with their offsets and
        record timestamps."""
        events, invalid = self.parsers[stream].parse_many([record.value for record in records])
        for index, reason in invalid.items():
            self._dead_letter(tp, stream, records[index], reason)
        kept = [r for i, r in enumerate(records) if i not in invalid] if invalid else records
        offsets = np.fromiter((r.offset for r in kept), np.int64, len(kept))
        stamps = np.fromiter((r.timestamp for r in kept), np.int64, len(kept))
        self.shared.metrics.events.labels(stream, "valid").inc(len(events))
        if not events:
            return None
        spec = self.shared.profile.spec
        requests = (to_columns(events, spec), offsets, stamps) if stream == "requests" else None
        if len(self.shared.sources) == 1:
            return requests  # nothing to join: the profile has no predictions
        joined: dict[str, list[tuple[dict[str, Any], int, int]]] = {"predictions": [], "feedback": []}
        now = time.monotonic()
        for event, offset, stamp in zip(events, offsets.tolist(), stamps.tolist()):
            if event.get("request_id") is None:
                continue
            for record in self._join(stream, event, now):
                joined["feedback" if "label" in record else "predictions"].append((record, offset, stamp))
        # A joined record counts where the event that completed it was read.
        for kind, rows in joined.items():
            if rows:
                joined_records, joined_offsets, joined_stamps = zip(*rows)
                chunk.add(to_columns(list(joined_records), spec), np.asarray(joined_offsets),
                          np.asarray(joined_stamps), kind, events=False)
        return requests

    def _join(self, stream: str, event: dict[str, Any], now: float) -> list[dict[str, Any]]:
        request_id = event["request_id"]
        if stream == "requests":
            return self.join.request(request_id, event.get("segments") or {}, now)
        if stream == "predictions":
            return self.join.prediction(request_id, event["prediction"], now)
        return self.join.feedback(request_id, event["label"], event.get("provenance"), now)

    def _dead_letter(self, tp: TopicPartition, stream: str, record: Any, invalid: Invalid) -> None:
        headers = [("synthdrift.reason", str(invalid.reason).encode()),
                   ("synthdrift.detail", invalid.detail[:1000].encode()),
                   ("synthdrift.source.topic", tp.topic.encode()),
                   ("synthdrift.source.partition", str(tp.partition).encode()),
                   ("synthdrift.source.offset", str(record.offset).encode())]
        self.pending.append(asyncio.ensure_future(self._deliver(
            self.producer.send(self.config.topics.dlq, value=record.value, key=record.key, headers=headers))))
        self.shared.metrics.events.labels(stream, "invalid").inc()
        self.shared.metrics.dead_letters.labels(stream, str(invalid.reason)).inc()

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
        del self.chunks[tp]

    async def _flush(self) -> None:
        """Sends what the merger has not heard yet: chunks that grew since their last version, and
        partitions that have caught up since (the merger waits for them to close a window). Then a
        tick for idle windows, and settles."""
        assert self.consumer is not None
        size = self.config.window.chunk_events
        for tp in list(self.shared.assigned):
            sent = self.sent.get(tp)
            chunk = self.chunks.get(tp)
            if chunk is None:
                if sent is None or sent[1] or not self._caught_up(tp, sent[0]):
                    continue
                # The last chunk completed before the partition caught up: tell the merger with
                # the next chunk, empty so far.
                chunk = self.chunks[tp] = Chunk(self.shared.analyzer, self.windowing, tp.topic, tp.partition,
                                                sent[0], size)
            if sent is None or chunk.next_offset > sent[0] or (not sent[1] and self._caught_up(tp, chunk.next_offset)):
                await self._send(tp, chunk)
        await self.sketches.send(key=self.key, value=TICK)
        await self._settle()
        lag: dict[str, int] = {}
        for tp in self.shared.assigned:
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                stream = self.shared.sources[tp.topic]
                lag[stream] = lag.get(stream, 0) + max(highwater - await self.consumer.position(tp), 0)
        for stream, value in lag.items():
            self.shared.metrics.lag.labels(stream).set(value)

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
                self.shared.metrics.joins.labels(kind, outcome).inc(count)
        self.join.outcomes.clear()


def topics_to_create(config: WorkerConfig, profile: Profile) -> dict[str, int]:
    """Every topic the worker reads or writes, with its partition count: create them before the
    worker starts, since a broker that auto-creates topics may pick another count."""
    topics = config.topics
    names = [topics.requests, topics.predictions, topics.feedback, topics.sketches, topics.alerts, topics.dlq,
             f"{app_id(config, profile)}-merger-changelog"]
    return dict.fromkeys(names, config.kafka.partitions)
