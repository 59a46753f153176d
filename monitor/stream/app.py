"""`synthdrift worker`: the Faust app of one worker process, wiring only.

- `read_traffic` (a task) runs the `TrafficReader`: traffic in batches -> chunk partials, sent to
  the topic `sketches` keyed by model;
- `merge` (an agent on `sketches`) hands each partial to the `Merger`, which closes and judges
  windows, and sends the alert events it returns; its state is the table `merger`;
- `/metrics`, `/health`, `/status` and `/report` (HTML) are the web views.

Delivery is at-least-once; counting is exactly-once: see `monitor.core.windows`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
import tempfile
import time
from typing import Any, cast

import faust
import orjson
from aiokafka import TopicPartition
from faust.types import StreamT
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor.config import WorkerConfig
from monitor.core.analyzer import Analyzer
from monitor.core.profile import Profile
from monitor.core.spec import Spec
from monitor.export.metrics import Metrics
from monitor.export.report import render as render_report
from monitor.stream.merger import Merger
from monitor.stream.reader import TrafficReader
from monitor.stream.table import WrittenTable
from monitor.stream.topics import app_id, changelog, delete_topics, read_range

log = logging.getLogger("synthdrift.worker")
HEALTH_SILENCE_SECONDS = 30.0


def create_app(config: WorkerConfig, profile: Profile, baseline: Profile | None = None) -> faust.App:
    """The worker's app; with an organic `baseline` (of `profile`), drift is judged against it and
    the reality gap against the profile."""
    registry = CollectorRegistry()
    model = profile.spec.model
    analyzer = Analyzer(baseline or profile, config.drift)
    metrics = Metrics(registry, model, config.metrics.top_k_segments, "organic" if baseline else "synthetic")
    metrics.declare_detectors({c.feature for c in analyzer.detectors.channels}, config.drift.detector.kind)
    kafka = config.kafka
    app = faust.App(
        app_id(config, profile.spec),
        broker=[f"kafka://{server}" for server in kafka.bootstrap_servers.split(",")],
        broker_credentials=_credentials(config),
        store="memory://",
        topic_partitions=kafka.partitions,
        datadir=tempfile.mkdtemp(prefix="synthdrift-faust-"),
        web_bind=config.metrics.host,
        web_host=config.metrics.host,
        web_port=config.metrics.port,
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=10,
        broker_session_timeout=10,
        broker_heartbeat_interval=1,
        Table=WrittenTable,
    )
    sketches = app.topic(config.topics.sketches, key_serializer="raw", value_serializer="raw",
                         partitions=kafka.partitions)
    alerts = app.topic(config.topics.alerts, key_serializer="raw", value_serializer="raw",
                       partitions=kafka.partitions)
    state = cast(WrittenTable, app.Table("merger", default=None, partitions=kafka.partitions))  # JSON keys and values
    merger = Merger(config, profile, analyzer, metrics, state, Analyzer(profile, config.drift) if baseline else None)
    reader = TrafficReader(config, profile.spec, analyzer, metrics, app.conf.id, sketches,
                           functools.partial(restart, config, profile.spec))

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def reset_merger(sender: Any, assigned: Any, **kwargs: Any) -> None:
        merger.reset()  # the merger may have moved

    @app.agent(sketches)
    async def merge(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            tp, offset = event.message.tp, event.message.offset
            expected = merger.next_offset(tp.partition)
            if expected is not None and offset < expected:
                continue  # merged already: a replay after a restart or takeover
            messages = [(offset, event.value)]
            if expected is not None and offset > expected:  # Faust skipped some? (see `monitor.stream.merger`)
                behind = await read_range(kafka.client_options(), TopicPartition(tp.topic, tp.partition),
                                          expected, offset)
                log.info("read back offsets %d to %d of %s/%d, after the last message merged and before the "
                         "first one Faust handed over (%d records)", expected, offset - 1, tp.topic, tp.partition,
                         len(behind))
                messages[:0] = [(record.offset, record.value) for record in behind]
            for message_offset, raw in messages:
                sent = [await alerts.send(key=model.encode(), value=orjson.dumps(alert))
                        for alert in merger.receive(raw, time.monotonic(), tp.partition, message_offset)]
                # Faust acks this message as the loop moves on, and may then commit its offset: what
                # it left (state, alerts) must be in Kafka first (see `monitor.stream.table`).
                await asyncio.gather(state.written(), *sent, return_exceptions=True)  # failures: Faust logs them

    @app.task
    async def read_traffic() -> None:
        await reader.run()

    @app.page("/metrics")
    async def metrics_view(view: View, request: Request) -> Response:
        # aiohttp sets the charset itself and refuses one inside content_type.
        content_type = CONTENT_TYPE_LATEST.split(";", 1)[0] + "; version=0.0.4"
        names = request.url.query.getall("name[]", [])  # as prometheus_client's own handler: only these
        return view.bytes(generate_latest(registry.restricted_registry(names) if names else registry),
                         content_type=content_type)

    @app.page("/health")
    async def health_view(view: View, request: Request) -> Response:
        # Flushes settle every flush_seconds: none for a while means Kafka is away or the loop is stuck.
        silent = time.monotonic() - reader.settled
        ready = bool(reader.assigned) and silent < HEALTH_SILENCE_SECONDS
        body = {"ready": ready, "profile": profile.id, "delivered_seconds_ago": round(silent, 1),
                "partitions": sorted(f"{tp.topic}/{tp.partition}" for tp in reader.assigned)}
        return view.json(body, status=200 if ready else 503)

    @app.page("/status")
    async def status_view(view: View, request: Request) -> Response:
        join = {"pending": reader.join.pending(), "bytes": reader.join.pending_bytes(),
                "max_bytes": config.join.max_bytes}
        return view.json({**merger.status(), "join": join})

    @app.page("/report")
    async def report_view(view: View, request: Request) -> Response:
        data = merger.report()
        if data is None:
            return view.text("no window judged yet by this worker\n", status=404)
        return view.html(render_report(data))

    return app


async def restart(config: WorkerConfig, spec: Spec, lost: list[Any]) -> None:
    """The broker lost this deployment's log (it kept it in memory and restarted, or the topics
    were deleted). The merger's changelog and the sketches topic then hold at most what this
    worker wrote since, about a log that is gone (Faust's recovery can wait forever on such a
    changelog): delete them and start afresh, in this process, as on a first start (which creates
    the topics again)."""
    where = ", ".join(sorted(f"{tp.topic}/{tp.partition}" for tp in lost))
    log.error("the broker no longer has the offsets this worker committed on %s (restarted without its data, or "
              "topics deleted): restarting the worker afresh", where)
    try:
        await delete_topics(config.kafka.client_options(), [changelog(config, spec), config.topics.sketches])
    except Exception as exc:  # aiokafka's admin client raises several kinds while a broker is away
        log.error("could not delete the merger's changelog and sketches: %r", exc)
    logging.shutdown()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def _credentials(config: WorkerConfig) -> Any:
    kafka = config.kafka
    if kafka.sasl_mechanism:
        return faust.SASLCredentials(username=kafka.sasl_username, password=kafka.sasl_password,
                                     mechanism=kafka.sasl_mechanism,
                                     ssl_context=kafka.client_options().get("ssl_context"))
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(kafka.client_options()["ssl_context"])
    return None
