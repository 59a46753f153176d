"""End-to-end throughput of one worker, next to a raw aiokafka + orjson loop over the same topic.

Both read the same 4-partition topic of 20-feature events (about 400 bytes each) from the embedded
broker. The worker consumes, validates, sketches, merges windows, judges and exports metrics; its
rate is taken between its first and its last counted event (start-up excluded), from
`synthdrift_events_total`. Its peak RSS (VmHWM) is read a third of the way and at the end.

Run: `make bench` (or `python benchmarks/worker.py`). Prints medians over repeats and the ratio.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from core import FEATURES, columns, profile

from monitor.commands.broker import EmbeddedBroker, free_port
from monitor.core.profile import Profile
from monitor.stream.topics import ensure_topics

EVENTS = 300_000
REPEATS = 3
PARTITIONS = 4


def events(total: int) -> list[bytes]:
    data = columns(total, seed=7)
    rows = zip(*(data[name].tolist() for name in FEATURES), strict=True)
    languages, regions = data["language"].tolist(), data["region"].tolist()
    return [orjson.dumps({"request_id": f"r{i}", "timestamp": 1_700_000_000 + i / 10_000, "model": "bench",
                          "features": dict(zip(FEATURES, row, strict=True)),
                          "segments": {"language": languages[i], "region": regions[i]}})
            for i, row in enumerate(rows)]


async def fill(bootstrap: str, topic: str, lines: list[bytes], partitions: int = PARTITIONS) -> None:
    await ensure_topics({"bootstrap_servers": bootstrap}, {topic: partitions})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, max_batch_size=1 << 20)
    await producer.start()
    try:
        for i, line in enumerate(lines):
            await producer.send(topic, line, partition=i % partitions,
                                timestamp_ms=1_700_000_000_000 + i // 10)
        await producer.flush()
    finally:
        await producer.stop()


async def raw_rate(bootstrap: str, topic: str, total: int) -> float:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None, max_partition_fetch_bytes=4 << 20)
    await consumer.start()
    seen, started = 0, None
    try:
        while seen < total:
            batches = await consumer.getmany(timeout_ms=500, max_records=20_000)
            if started is None and batches:
                started = time.perf_counter()
            for records in batches.values():
                for record in records:
                    orjson.loads(record.value)
                seen += len(records)
    finally:
        await consumer.stop()
    return total / (time.perf_counter() - started)  # type: ignore[operator]


def scrape(port: int) -> float:
    try:
        # Polled every 50 ms: only the counter, not every series (as Prometheus would every 15 s).
        url = f"http://127.0.0.1:{port}/metrics?name[]=synthdrift_events_total"
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('synthdrift_events_total{') and 'status="valid"' in line)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_worker(bootstrap: str, topic: str, profile_path: Path, directory: Path, name: str, group: str,
                 partitions: int = PARTITIONS) -> tuple[subprocess.Popen[bytes], int]:
    """A worker of consumer group `group` on `topic`, with its own port; its log in `directory`."""
    port = free_port()
    config = directory / f"monitor-{name}.yaml"
    config.write_text(yaml.safe_dump({
        "profile": str(profile_path),
        "kafka": {"bootstrap_servers": bootstrap, "group_id": group, "partitions": partitions},
        "topics": {"requests": topic, "sketches": f"{group}.sketches", "alerts": f"{group}.alerts",
                   "dlq": f"{group}.dlq"},
        "window": {"seconds": 5, "idle_seconds": 2},
        "metrics": {"port": port},
    }))
    log = (directory / f"worker-{name}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "monitor", "worker", "--config", str(config)],
                            stdout=log, stderr=subprocess.STDOUT), port


def worker_rate(bootstrap: str, topic: str, profile_path: Path, directory: Path,
                run: int) -> tuple[float, float, float]:
    worker, port = start_worker(bootstrap, topic, profile_path, directory, str(run), f"bench-{run}")
    try:
        first = last = None
        third_rss = 0.0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            counted = scrape(port)
            now = time.perf_counter()
            if counted and first is None:
                first = (now, counted)
            if counted >= EVENTS / 3 and not third_rss:
                third_rss = peak_rss_mib(worker.pid)
            if counted >= EVENTS:
                last = (now, counted)
                break
            time.sleep(0.05)
        if first is None or last is None:
            raise RuntimeError(f"the worker did not count every event; see {directory}/worker-{run}.log")
        return (last[1] - first[1]) / (last[0] - first[0]), third_rss, peak_rss_mib(worker.pid)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def written_profile(directory: Path) -> tuple[Profile, Path]:
    """The benchmark's synthetic profile, and the file a worker loads it from."""
    synthetic = profile(directory)
    path = directory / "profile.json"
    path.write_bytes(synthetic.to_json())
    return synthetic, path


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        directory = Path(tmp)
        _, profile_path = written_profile(directory)
        topic = "bench.requests"
        asyncio.run(fill(broker.bootstrap_servers, topic, events(EVENTS)))
        raw, rates, rss = [], [], []
        for run in range(REPEATS):
            raw.append(asyncio.run(raw_rate(broker.bootstrap_servers, topic, EVENTS)))
            rate, third, peak = worker_rate(broker.bootstrap_servers, topic, profile_path, directory, run)
            rates.append(rate)
            rss.append((third, peak))
        raw_median, worker_median = statistics.median(raw), statistics.median(rates)
        third_median = statistics.median(r[0] for r in rss)
        peak_median = statistics.median(r[1] for r in rss)
        print(f"worker end to end: {EVENTS:,} events of {len(FEATURES)} features on {PARTITIONS} partitions, "
              f"median of {REPEATS}")
        print(f"  raw aiokafka getmany + orjson.loads: {raw_median:10,.0f} events/s")
        print(f"  synthdrift worker (validate, sketch, judge, metrics): {worker_median:10,.0f} events/s")
        ratio = worker_median / raw_median
        print(f"  worker / raw: {ratio:.2f}   goal >= 0.7 -> {'met' if ratio >= 0.7 else 'NOT met'}; "
              f">= 100,000 events/s (on a quiet machine) -> {'met' if worker_median >= 100_000 else 'NOT met'}")
        print(f"  worker peak RSS: {third_median:.0f} MiB a third of the way, {peak_median:.0f} MiB at the end "
              f"(goal < 300 MiB and flat) -> "
              f"{'met' if peak_median < 300 and peak_median < 1.2 * third_median else 'NOT met'}")


if __name__ == "__main__":
    main()
