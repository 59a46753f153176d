"""Integration: real workers (subprocesses) on a real Kafka-protocol broker.

The broker is the embedded tansu unless SYNTHDRIFT_TEST_BOOTSTRAP points at another Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import random
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from prometheus_client import CollectorRegistry
from streaming import Stack, metrics, report, send_records, status, wait_for

from monitor.commands.replay import Drift, produce, simulate
from monitor.config import KafkaSettings, Topics, WindowSettings, WorkerConfig, worker_config
from monitor.core import schemas
from monitor.core.analyzer import Analyzer
from monitor.core.profile import Profile, ProfileSettings, build
from monitor.core.windows import Partial, decode
from monitor.export.metrics import Metrics
from monitor.stream.reader import TrafficReader
from monitor.stream.table import MARK
from monitor.stream.topics import ensure_topics, topics_to_create

EVENTS, SHIFT, START = 8000, 4000, 1_700_000_000.0  # 1 ms apart: 2-second windows of 2,000 events
DRIFT = [Drift("amount", "shift", 2.0), Drift("language", "new", 0.2, "es")]


@pytest.fixture
def stack(bootstrap: str, profile_path: Path, tmp_path: Path) -> Iterator[Stack]:
    deployment = Stack(bootstrap, profile_path, tmp_path)
    yield deployment
    deployment.stop()


def traffic(profile_path: Path, events: int = EVENTS, seed: int = 1) -> list[bytes]:
    profile = Profile.load(profile_path)
    return [orjson.dumps(e) + b"\n" for e in simulate(profile, events, DRIFT, SHIFT, seed, start_time=START)]


def all_windows(stack: Stack, events: int) -> dict[int, dict]:
    """Waits until the windows closed hold every event, and returns them."""
    try:
        return wait_for(lambda: (w := stack.windows()) and sum(x["events"] for x in w.values()) >= events and w,
                        90, f"windows holding {events} events")
    except AssertionError as timeout:  # what came instead: which window is short, or missing
        closed = {key: w["events"] for key, w in sorted(stack.windows().items())}
        late = stack.metric("synthdrift_events_total", stream="requests", status="late")
        raise AssertionError(f"{timeout}; closed: {closed}, late: {late:.0f}") from None


def test_drift_reaches_metrics_and_alert_events(stack: Stack, profile_path: Path) -> None:
    stack.start_worker()
    stack.produce(traffic(profile_path))
    windows = all_windows(stack, EVENTS)
    assert sum(w["events"] for w in windows.values()) == EVENTS
    before = [w for k, w in sorted(windows.items()) if k < (START * 1000 + SHIFT)]
    after = [w for k, w in sorted(windows.items()) if k >= (START * 1000 + SHIFT)]
    assert all(w["worst"] == "ok" for w in before) and all(w["worst"] == "critical" for w in after)
    assert stack.metric("synthdrift_feature_drift_severity", feature="amount", segment="all") == 2
    assert stack.metric("synthdrift_coverage_gap_share", field="language", value="es") > 0.1
    assert stack.metric("synthdrift_events_total", stream="requests", status="valid") == EVENTS
    assert stack.metric("synthdrift_drift_detections_total", feature="amount") >= 1
    port = stack.workers[0][1]
    assert {f.name for f in metrics(port, "synthdrift_events_total")} == {"synthdrift_events"}
    assert len(metrics(port)) > 10
    # /status explains the gap of the last (drifted) window: the bins that carry its PSI.
    gap = {(r["feature"], str(r["segment"])): r for r in status(port)["reality_gap"]}
    bins = gap[("amount", "None")]["bins"]
    assert bins and bins[0]["psi"] > 0.05 and bins[0]["real"] != bins[0]["synthetic"]
    last = max(status(port)["windows"], key=lambda w: w["key"])  # drifted: amount moved, `es` is new
    assert {c["field"] for s in last["slices"] for c in s["conditions"]} & {"amount", "language"}
    assert stack.metric("synthdrift_slice_share", source="live") > 0
    horizon = status(port)["horizon"]  # the last windows' slice counts, searched together
    assert horizon["windows"] == min(len(windows), 12) and horizon["events"] > 0 and horizon["slices"]
    page = report(port)  # the HTML report of the last window, drifted features first
    assert page.count("Plotly.newPlot(") > 3 and page.index(">amount <") < page.index(">channel <")
    alerts = [orjson.loads(r.value) for r in stack.read_topic(stack.topics.alerts, 1)]
    amount = [a for a in alerts if a["feature"] == "amount" and a["segment"] is None]
    assert amount and amount[0]["state"] == "critical" and amount[0]["previous"] == "ok"
    assert amount[0]["thresholds"] and amount[0]["window"]["key"] >= START * 1000 + SHIFT
    # Slices alert too (a warning at most), with their conditions as the segment; and a segment
    # value nobody generated gets the accuracy of its joined labels.
    found = [a for a in alerts if a["feature"] == "(slice)" and a["state"] == "warning"]
    assert found and all(schemas.problem("alert", a) is None for a in found)
    assert set().union(*(a["segment"] for a in found)) & {"amount", "language"}
    spanish = [g for g in last["coverage_gaps"] if (g["field"], g["value"]) == ("language", "es")]
    assert spanish and spanish[0]["labelled"] > 50 and 0 < spanish[0]["accuracy"] < 1


def test_invalid_events_go_to_the_dead_letter_topic_with_their_reason(stack: Stack, profile_path: Path) -> None:
    stack.start_worker()
    good = traffic(profile_path, events=1000)
    bad = [b"{not json\n", b'{"model": "support-router", "features": {"amount": NaN}}\n',
           b'{"request_id": "x", "model": "someone-else", "features": {}}\n',
           b'{"request_id": "y", "model": "support-router", "features": {"amount": "lots"}}\n']
    stack.produce(good[:500] + bad + good[500:])
    letters = stack.read_topic(stack.topics.dlq, len(bad))
    reasons = sorted(dict(r.headers)["synthdrift.reason"].decode() for r in letters)
    assert reasons == ["non_finite", "not_json", "schema_violation", "unknown_model"]
    # The original bytes, as the producer sent them (replay re-encodes what is JSON).
    sent = {line.rstrip(b"\n") if b"NaN" in line or b"{not" in line else orjson.dumps(orjson.loads(line))
            for line in bad}
    assert {r.value for r in letters} == sent
    assert all(dict(r.headers)["synthdrift.source.topic"].decode() == stack.topics.requests for r in letters)
    wait_for(lambda: stack.metric("synthdrift_dead_letters_total", reason="not_json") == 1, 20, "DLQ metric")
    assert stack.metric("synthdrift_events_total", stream="requests", status="invalid") == 4
    windows = all_windows(stack, 1000)
    assert sum(w["events"] for w in windows.values()) == 1000


def test_predictions_join_their_requests_in_either_order(stack: Stack, profile_path: Path) -> None:
    stack.start_worker()
    records = [orjson.loads(line) for line in traffic(profile_path, events=1000)]
    # 200 synthetic probe requests; 100 organic requests labelled by a synthetic labeller.
    requests = [{**{k: v for k, v in r.items() if k not in ("prediction", "label")},
                 "provenance": "synthetic" if i < 200 else "organic"} for i, r in enumerate(records)]
    outputs = [{k: r[k] for k in ("request_id", "timestamp", "model", "prediction")} for r in records]
    feedback = [{"request_id": r["request_id"], "label": r["label"],
                 "provenance": "synthetic" if 200 <= i < 300 else None} for i, r in enumerate(records)]
    # Half the predictions arrive before their requests, half after; the feedback last.
    stack.produce_to(stack.topics.predictions, outputs[:500])
    stack.produce_to(stack.topics.requests, requests)
    stack.produce_to(stack.topics.predictions, outputs[500:])
    stack.produce_to(stack.topics.feedback, feedback)
    wait_for(lambda: stack.metric("synthdrift_joins_total", kind="feedback", outcome="matched") == 1000, 30,
             "every feedback joined")
    assert stack.metric("synthdrift_joins_total", kind="prediction", outcome="matched") == 1000
    assert stack.metric("synthdrift_joins_total", outcome="expired") == 0
    all_windows(stack, 1000)
    # Accuracy per language needs the request's segment, the prediction and the label together.
    wait_for(lambda: stack.metric("synthdrift_feature_drift_score", feature="performance", segment="language=en",
                                  statistic="accuracy") > 0.5, 30, "accuracy by segment from joined feedback")
    # Every event and label counts once, under its record's provenance (a label's, unless organic).
    def by_provenance() -> dict[str, list[int]]:
        totals: dict[str, list[int]] = {}
        for window in stack.windows().values():
            for row in window["provenance"]:
                counted = totals.setdefault(row["provenance"], [0, 0])
                counted[0] += row["events"]
                counted[1] += row["labelled"]
        return totals
    wait_for(lambda: by_provenance() == {"organic": [800, 700], "synthetic": [200, 300]}, 30,
             "events and labels by provenance")
    wait_for(lambda: stack.metric("synthdrift_accuracy_ratio", provenance="organic", segment="language=en",
                                  statistic="accuracy") > 0.5, 30, "organic accuracy by segment on /metrics")
    assert stack.metric("synthdrift_accuracy_ratio", segment="all", statistic="synthetic_accuracy") > 0.5
    # The eval-flattery index of organic traffic, with its interval, in /status and on /metrics.
    flattery = [row for w in stack.windows().values() for row in w["flattery"] if row["segment"] is None]
    assert flattery and all(row["low"] <= row["index"] <= row["high"] for row in flattery)
    assert stack.metric("synthdrift_eval_flattery", segment="all", statistic="high") > \
        stack.metric("synthdrift_eval_flattery", segment="all", statistic="low")


def window_digests(windows: dict[int, dict]) -> dict[int, tuple[int, str]]:
    return {key: (w["events"], w["digest"]) for key, w in windows.items()}


def test_topics_compressed_by_any_codec_are_read(stack: Stack, profile_path: Path) -> None:
    """Producers compress their batches (Kafka's gzip, snappy, lz4, zstd): a worker that cannot
    decompress one reads nothing, so every codec is a dependency, not an option."""
    stack.start_worker()
    lines = traffic(profile_path)
    codecs = ("gzip", "snappy", "lz4", "zstd")
    share = len(lines) // len(codecs)
    for i, codec in enumerate(codecs):
        asyncio.run(produce({"bootstrap_servers": stack.bootstrap, "compression_type": codec}, stack.topics,
                            lines[i * share:(i + 1) * share]))
    assert sum(w["events"] for w in all_windows(stack, EVENTS).values()) == EVENTS
    assert stack.metric("synthdrift_events_total", stream="requests", status="valid") == EVENTS
    assert stack.metric("synthdrift_events_total", status="invalid") == 0


def test_a_recovery_reads_every_change_the_merger_made(stack: Stack, profile_path: Path) -> None:
    # Faust recovers a table from its changelog up to the end offset the broker reports, which the
    # embedded broker gives as its newest batch's first offset + 1: past it, only the mark that
    # ends every message's changes may lie (see `monitor.stream.table`).
    stack.start_worker()
    stack.produce(traffic(profile_path))
    all_windows(stack, EVENTS)
    topic = f"{stack.group}-merger-changelog"
    ends: list[dict[int, int]] = []

    def settled() -> bool:  # the changelog's last offsets read the same twice: nothing more is coming
        changelog = asyncio.run(read_log(stack.bootstrap, topic))
        ends.append({partition: records[-1][0] for partition, (records, _) in changelog.items()})
        return len(ends) > 1 and ends[-1] == ends[-2]

    wait_for(settled, 30, "the changelog to settle")
    changelog = asyncio.run(read_log(stack.bootstrap, topic))
    assert sum(len(records) for records, _ in changelog.values()) > 20
    for records, reported in changelog.values():
        unrecovered = [key for offset, key in records if offset >= reported]
        assert unrecovered in ([], [orjson.dumps(MARK)]), unrecovered


def test_two_workers_give_the_same_windows_as_one(stack: Stack, profile_path: Path) -> None:
    pair = stack.same_topics()
    try:
        stack.start_worker()
        pair.start_worker()
        pair.start_worker()
        stack.produce(traffic(profile_path), rate=4000)
        one, two = all_windows(stack, EVENTS), all_windows(pair, EVENTS)
        assert window_digests(two) == window_digests(one)
        assert len(one) >= 4
    finally:
        pair.stop()


def test_a_worker_killed_mid_stream_loses_nothing_and_counts_nothing_twice(
        bootstrap: str, requests_profile_path: Path, tmp_path: Path) -> None:
    # Requests only: joined records can still be lost or doubled across a kill (see the README).
    profile_path = requests_profile_path
    stack = Stack(bootstrap, profile_path, tmp_path)
    reference = stack.same_topics()
    try:
        reference.start_worker()
        port = stack.start_worker()
        lines = traffic(profile_path)
        stack.produce(lines[:5000])
        wait_for(lambda: stack.metric("synthdrift_events_total", stream="requests", status="valid") >= 2500, 30,
                 "the worker half way through")
        stack.kill(port)  # SIGKILL: no goodbye, no last commit
        stack.produce(lines[5000:])
        stack.start_worker()
        assert window_digests(all_windows(stack, EVENTS)) == window_digests(all_windows(reference, EVENTS))
    finally:
        reference.stop()
        stack.stop()


def test_count_windows_hold_the_offsets_they_cover(bootstrap: str, profile_path: Path, tmp_path: Path) -> None:
    stack = Stack(bootstrap, profile_path, tmp_path, events=2000)  # 500 offsets of each of the 4 partitions
    try:
        stack.start_worker()
        stack.produce(traffic(profile_path))
        windows = all_windows(stack, EVENTS)
        records = stack.read_topic(stack.topics.requests, EVENTS)
        assert {key: w["events"] for key, w in windows.items()} == dict(Counter(r.offset // 500 for r in records))
        assert len(windows) >= 4
    finally:
        stack.stop()


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the TCP sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_the_web_port_listens_on_loopback_only(stack: Stack) -> None:
    port = stack.start_worker()
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, little-endian hex


def test_a_backlog_closes_no_window_early(bootstrap: str, requests_profile_path: Path, tmp_path: Path) -> None:
    # 500,000 events wait in the topic before the worker starts; partitions report as they catch up.
    events = 500_000
    stack = Stack(bootstrap, requests_profile_path, tmp_path, seconds=60)  # idle_seconds: 2
    try:
        profile = Profile.load(requests_profile_path)
        stack.produce(orjson.dumps(e) for e in simulate(profile, events, [], 0, seed=2, start_time=START))
        stack.start_worker()
        windows = wait_for(lambda: (w := stack.windows()) and sum(x["events"] for x in w.values()) >= events
                           and w, 300, f"windows holding {events} events")
        assert sum(w["events"] for w in windows.values()) == events
        assert stack.metric("synthdrift_events_total", stream="requests", status="late") == 0
    finally:
        stack.stop()


def test_five_kills_over_uneven_partitions_change_no_window(
        bootstrap: str, requests_profile_path: Path, tmp_path: Path) -> None:
    # 20,000 events over 4 partitions holding 50%, 25%, 15% and 10% of them, sent in 5 bursts; the
    # worker is killed with SIGKILL at a random point of each burst and started again.
    rng = random.Random(7)
    profile = Profile.load(requests_profile_path)
    events = [orjson.dumps(e) for e in simulate(profile, 20_000, DRIFT, 10_000, seed=5, start_time=START)]
    partitions = rng.choices(range(4), weights=[50, 25, 15, 10], k=len(events))
    stack = Stack(bootstrap, requests_profile_path, tmp_path)
    reference = stack.same_topics()
    try:
        reference.start_worker()
        port = stack.start_worker()
        for burst in range(5):
            part = slice(burst * 4000, (burst + 1) * 4000)
            sender = threading.Thread(target=stack.send, args=(
                [(p, e, None, []) for p, e in zip(partitions[part], events[part], strict=True)],))
            sender.start()
            time.sleep(rng.uniform(0.2, 3.0))
            stack.kill(port)
            sender.join()
            port = stack.start_worker()
        expected = window_digests(all_windows(reference, len(events)))
        assert window_digests(all_windows(stack, len(events))) == expected
        assert stack.metric("synthdrift_events_total", stream="requests", status="late") == 0
    finally:
        reference.stop()
        stack.stop()


def test_joined_labels_reach_the_language_of_their_request_text(bootstrap: str, profile_path: Path,
                                                                 tmp_path: Path) -> None:
    """A derived language is a segment of labelled predictions too: the join carries the request's
    language (identified once, from its text) to its prediction and its label."""
    synthetic = Profile.load(profile_path)
    spec = dataclasses.replace(synthetic.spec, languages=("body",))
    languages = build(spec, profile_path.parent / "train.csv", ProfileSettings(min_segment_rows=100))
    path = tmp_path / "profile.json"
    path.write_bytes(languages.to_json())
    stack = Stack(bootstrap, path, tmp_path)
    try:
        port = stack.start_worker()
        stack.produce([orjson.dumps(e) for e in simulate(languages, 4000, [], 0, seed=2, start_time=START)])
        all_windows(stack, 4000)
        labelled = {s.labels["segment"]: s.value for f in metrics(port, "synthdrift_labelled_predictions")
                    for s in f.samples if s.labels["provenance"] == "organic"}
        assert sum(v for k, v in labelled.items() if k.startswith("body.language=")) > 500, labelled
    finally:
        stack.stop()


async def test_a_rebalance_in_the_middle_of_a_batch_starts_no_chunk_in_its_middle(
        bootstrap: str, requests_profile_path: Path, tmp_path: Path) -> None:
    # aiokafka runs a rebalance's callbacks while the reader awaits a delivery, here the last
    # version of one partition's chunk. The rebalance seeks both partitions back to their commits,
    # while the reader still holds the other partition's records fetched before, which start in
    # the middle of a chunk: sketched, that chunk's last version would lack its first events.
    profile = Profile.load(requests_profile_path)
    suffix = uuid.uuid4().hex[:8]
    config = WorkerConfig(profile=requests_profile_path, kafka=KafkaSettings(bootstrap_servers=bootstrap, partitions=2),
                          topics=Topics(**{name: f"r{suffix}.{name}" for name in Topics.__dataclass_fields__}),
                          window=WindowSettings(chunk_events=500, flush_seconds=0.1))
    await ensure_topics(config.kafka.client_options(), topics_to_create(config, profile.spec))
    events = [orjson.dumps(e) for e in simulate(profile, 3500, [], 0, seed=3, start_time=START)]
    partials: list[Partial] = []
    rebalance = asyncio.Event()  # set: the next last version of a chunk comes with a rebalance

    class Sketches:
        async def send(self, key: bytes, value: bytes) -> asyncio.Future[None]:
            message = decode(value)
            if isinstance(message, Partial):
                partials.append(message)
                if message.complete and rebalance.is_set():
                    rebalance.clear()
                    assigned = list(reader.assigned)
                    await reader.on_partitions_revoked(assigned)
                    await reader.on_partitions_assigned(assigned)
            delivered = asyncio.get_running_loop().create_future()
            delivered.set_result(None)
            return delivered

    def read_to(offset: int) -> bool:  # both partitions' chunks sent up to `offset`
        return {p.partition for p in partials if p.next_offset == offset} == {0, 1}

    def records(part: list[bytes]) -> list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]]:
        return [(i % 2, e, None, []) for i, e in enumerate(part)]  # two partitions, in turn

    reader = TrafficReader(config, profile.spec, Analyzer(profile), Metrics(CollectorRegistry(), "m", 10), "app",
                           Sketches(), no_log_lost)  # type: ignore[arg-type]
    async with running(reader):
        # 1,250 events a partition: two chunks complete and committed, a third a quarter read.
        await send_records(bootstrap, config.topics.requests, records(events[:2500]))
        await until(lambda: read_to(1250) and len(reader.committed) == 2 and not reader.commits, 30)
        rebalance.set()  # then 500 more a partition, fetched in one batch
        await send_records(bootstrap, config.topics.requests, records(events[2500:]))
        await until(lambda: read_to(1750) and not rebalance.is_set(), 30)
    short = [(p.partition, p.first_offset, p.next_offset) for p in partials
             if sum(s.events for s in p.windows.values()) != p.next_offset - p.first_offset]
    assert not short, short


def test_sketches_faust_skipped_at_a_restart_are_merged(bootstrap: str, requests_profile_path: Path,
                                                        tmp_path: Path) -> None:
    # A restarted Faust worker fetches before it seeks to the committed offsets, then clears the
    # queue the fetched messages wait in: a message is skipped, and later committed past (seen
    # here: a chunk's last version, whose events its window never got). Here the traffic group's
    # reader sends partials while no merger runs, then the Faust group's committed offset is set
    # past them, as such a skip leaves it: the merger must read them back.
    profile = Profile.load(requests_profile_path)
    events = [orjson.dumps(e) for e in simulate(profile, 4000, [], 0, seed=4, start_time=START)]
    records: list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]] = [
        (i % 4, e, None, []) for i, e in enumerate(events)]
    stack = Stack(bootstrap, requests_profile_path, tmp_path)
    try:
        stack.start_worker()
        stack.send(records[:2000])
        all_windows(stack, 2000)
        stack.stop()
        stack.send(records[2000:])
        config = worker_config(stack.config)
        asyncio.run(read_without_merger(config, profile, 4000))
        asyncio.run(commit_to_end(bootstrap, config.kafka.group_id or "", config.topics.sketches))
        stack.start_worker()
        assert sum(w["events"] for w in all_windows(stack, 4000).values()) == 4000
        assert stack.metric("synthdrift_events_total", stream="requests", status="late") == 0
    finally:
        stack.stop()


async def read_without_merger(config: WorkerConfig, profile: Profile, events: int) -> None:
    """Runs a deployment's traffic reader alone, in this process, until it has read `events` and
    committed the chunks it completed: their partials go to the sketches topic, merged by no one."""
    producer = AIOKafkaProducer(bootstrap_servers=config.kafka.bootstrap_servers)
    await producer.start()

    class Sketches:
        async def send(self, key: bytes, value: bytes) -> asyncio.Future[Any]:
            return await producer.send(config.topics.sketches, value, key=key)

    reader = TrafficReader(config, profile.spec, Analyzer(profile, config.drift), Metrics(CollectorRegistry(), "m", 10),
                           config.kafka.group_id or "", Sketches(), no_log_lost)  # type: ignore[arg-type]
    try:
        async with running(reader):
            await until(lambda: sum(reader.counted.values()) == events and bool(reader.committed)
                        and not reader.commits and not reader.pending, 60)
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def running(reader: TrafficReader) -> AsyncIterator[None]:
    """Runs a traffic reader in this process for the block; then undoes what it set in the collector."""
    threshold = gc.get_threshold()
    reading = asyncio.create_task(reader.run())
    try:
        yield
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        gc.unfreeze()
        gc.set_threshold(*threshold)


async def no_log_lost(lost: list[Any]) -> None:
    raise AssertionError("no log is lost here")


async def commit_to_end(bootstrap: str, group: str, topic: str) -> None:
    """Commits a Faust group's offsets at the end of every partition of `topic`, as a member of the
    group while no other is (the broker takes commits from members only, of the group's protocol)."""
    ends = {TopicPartition(topic, partition): records[-1][0] + 1
            for partition, (records, _) in (await read_log(bootstrap, topic)).items()}

    class FaustProtocol(RangePartitionAssignor):
        name = "faust"

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                partition_assignment_strategy=(FaustProtocol,))
    await consumer.start()
    try:
        await until(lambda: bool(consumer.assignment()), 30)
        await consumer.commit(ends)
    finally:
        await consumer.stop()


async def until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not reached within {timeout:.0f} s"
        await asyncio.sleep(0.05)


async def read_log(bootstrap: str, topic: str) -> dict[int, tuple[list[tuple[int, bytes]], int]]:
    """Per partition that has records: the (offset, key) of each, and the end offset the broker reports."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        found = {}
        await consumer.topics()  # the metadata, with the topic's partitions
        for partition in sorted(consumer.partitions_for_topic(topic) or ()):
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            records: list[tuple[int, bytes]] = []
            while (highwater := consumer.highwater(tp)) is None or (records[-1][0] + 1 if records else 0) < highwater:
                records += [(r.offset, r.key) for r in (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])]
            if records:
                found[partition] = records, (await consumer.end_offsets([tp]))[tp]
        return found
    finally:
        await consumer.stop()
