"""Helpers for the integration tests: real workers in subprocesses against a real broker."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

import orjson
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from monitor.commands.broker import free_port
from monitor.commands.replay import produce, timestamp_ms
from monitor.config import Topics

STARTUP_SECONDS = 60


class Stack:
    """One synthdrift deployment under test: its topics, its consumer group, its workers."""

    def __init__(self, bootstrap: str, profile: Path, directory: Path, topics: Topics | None = None,
                 baseline: Path | None = None, **window: Any) -> None:
        self.bootstrap = bootstrap
        self.directory = directory
        suffix = uuid.uuid4().hex[:8]
        self.topics = topics or Topics(**{name: f"t{suffix}.{name}" for name in Topics.__dataclass_fields__})
        self.group = f"g{suffix}"
        self.config = directory / f"monitor-{suffix}.yaml"
        self.config.write_text(yaml.safe_dump({
            "profile": str(profile),
            "kafka": {"bootstrap_servers": bootstrap, "group_id": self.group},
            "topics": {name: getattr(self.topics, name) for name in Topics.__dataclass_fields__},
            "window": {"seconds": 2, "idle_seconds": 2, "chunk_events": 500, "flush_seconds": 0.3, **window},
            "alerts": {"enter_windows": 1},
            "drift": {"min_events": 50},
            **({"baseline": str(baseline)} if baseline else {}),
        }))
        self.workers: list[tuple[subprocess.Popen[bytes], int]] = []

    def same_topics(self) -> Stack:
        """A second deployment (its own group, its own internal topics: sketches, alerts, dead
        letters) that reads the same input topics: it sees the same stream, and nothing of ours."""
        own = Topics(**{name: f"t{uuid.uuid4().hex[:8]}.{name}" for name in Topics.__dataclass_fields__})
        topics = dataclasses.replace(own, requests=self.topics.requests, predictions=self.topics.predictions,
                                     feedback=self.topics.feedback)
        return Stack(self.bootstrap, Path(yaml.safe_load(self.config.read_text())["profile"]), self.directory,
                     topics=topics)

    def start_worker(self) -> int:
        port = free_port()
        log = (self.directory / f"worker-{self.group}-{port}.log").open("wb")
        env = {**os.environ, "SYNTHDRIFT_METRICS__PORT": str(port)}
        process = subprocess.Popen([sys.executable, "-m", "monitor", "worker", "--config", str(self.config),
                                    "--loglevel", "info"], stdout=log, stderr=subprocess.STDOUT, env=env)
        self.workers.append((process, port))
        wait_for(lambda: health(port), STARTUP_SECONDS, f"worker on port {port} ready")
        return port

    def kill(self, port: int) -> None:
        for process, worker_port in self.workers:
            if worker_port == port:
                process.send_signal(signal.SIGKILL)
                process.wait()

    def stop(self) -> None:
        for process, _ in self.workers:
            if process.poll() is None:
                process.terminate()
        for process, _ in self.workers:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()

    def produce(self, lines: Iterable[bytes], rate: float = 0.0) -> int:
        return asyncio.run(produce({"bootstrap_servers": self.bootstrap}, self.topics, lines, rate=rate))

    def produce_to(self, topic: str, events: list[dict[str, Any]]) -> int:
        """Sends events as they are to one topic (no splitting of joined records)."""
        lines = [orjson.dumps(e) for e in events]
        return asyncio.run(produce({"bootstrap_servers": self.bootstrap}, Topics(requests=topic), lines,
                                   joined=False))

    def send(self, records: Iterable[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]]) -> None:
        """Sends raw records to the requests topic as they are: (partition, value, key, headers), each
        stamped with its event's timestamp when it has one."""
        asyncio.run(send_records(self.bootstrap, self.topics.requests, records))

    def windows(self) -> dict[int, dict[str, Any]]:
        """Closed windows by key, from every live worker of this deployment."""
        found: dict[int, dict[str, Any]] = {}
        for process, port in self.workers:
            if process.poll() is None:
                found |= {w["key"]: w for w in status(port)["windows"]}
        return found

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples with these labels over the live workers."""
        total = 0.0
        for process, port in self.workers:
            if process.poll() is None:
                total += sum(s.value for f in metrics(port, name) for s in f.samples
                             if s.name == name and labels.items() <= s.labels.items())
        return total

    def read_topic(self, topic: str, expected: int, timeout: float = 30) -> list[Any]:
        return asyncio.run(read_topic(self.bootstrap, topic, expected, timeout))


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _get(port: int, path: str, timeout: float = 2) -> bytes | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return bytes(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def health(port: int) -> bool:
    body = _get(port, "/health")
    return bool(body and orjson.loads(body)["ready"])


def status(port: int) -> dict[str, Any]:
    body = _get(port, "/status")
    return orjson.loads(body) if body else {"windows": []}


def report(port: int) -> str:
    """The worker's HTML report of its last window (a few MB: Plotly inlined)."""
    body = _get(port, "/report", timeout=30)
    return body.decode() if body else ""


def metrics(port: int, *names: str) -> list[Any]:
    """The metric families on a worker's /metrics; only those with these sample names, if any."""
    body = _get(port, "/metrics" + "".join(f"{'&' if i else '?'}name[]={n}" for i, n in enumerate(names)))
    return list(text_string_to_metric_families(body.decode())) if body else []


async def send_records(bootstrap: str, topic: str,
                records: Iterable[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=2 << 20, linger_ms=20)
    await producer.start()
    try:
        for partition, value, key, headers in records:
            try:
                stamp = timestamp_ms(orjson.loads(value).get("timestamp")) if value else None
            except (orjson.JSONDecodeError, AttributeError):
                stamp = None
            await producer.send(topic, value, key=key, partition=partition, timestamp_ms=stamp, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, expected: int, timeout: float) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"reader-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                records += batch
    finally:
        await consumer.stop()
    return records
