"""Scale-out and a long run, on the embedded broker: the figures a capacity plan needs.

1. **Scale-out.** An 8-partition topic is filled, then one worker reads it, then two workers in one
   consumer group read it again (a group of their own), three times in turn. Each rate is taken
   from `synthdrift_events_total` summed over the workers, from the moment every partition is
   assigned (a rebalance is not throughput) while every worker still has events to read (see
   `group_rate`); the rate to the last event is printed too. Every run must close the very same
   windows: equal digests, window by window.
2. **A million events.** A producer in this process writes 1,000,000 events while one worker reads
   them. The worker's lag (`synthdrift_consumer_lag_messages`) and RSS are sampled as it goes; lag
   must return to 0, RSS stay flat, and every window's digest must equal the digest of the same
   events sketched offline by the core (nothing lost, nothing counted twice).

Run: `make bench` (or `python benchmarks/scale.py`). On 2 cores the broker, the producer and the
workers share the machine: two workers cannot double the rate of one here.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
from worker import events, fill, scrape, start_worker, written_profile

from monitor.commands.broker import EmbeddedBroker
from monitor.core.analyzer import Analyzer
from monitor.core.events import EventParser, to_columns
from monitor.core.profile import Profile
from monitor.stream.topics import ensure_topics

SCALE_EVENTS = 600_000
SCALE_PARTITIONS = 8
SCALE_REPEATS = 3
LONG_EVENTS = 1_000_000
LONG_PARTITIONS = 4
WINDOW_MS = 5_000  # the workers' `window.seconds`: 5


def get(port: int, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return orjson.loads(response.read())
    except OSError:
        return None


def metric_sum(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics?name[]={name}", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user and system, all threads) the processes have used so far."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def digests(ports: list[int], events: int, timeout: float = 120) -> dict[int, str]:
    """Every closed window's digest by key, once the windows hold all `events`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        windows = {w["key"]: w for port in ports for w in (get(port, "/status") or {"windows": []})["windows"]}
        if sum(w["events"] for w in windows.values()) >= events:
            return {key: w["digest"] for key, w in sorted(windows.items())}
        time.sleep(0.5)
    raise RuntimeError(f"the windows did not hold {events:,} events within {timeout:.0f} s")


class GroupRun(NamedTuple):
    rate: float  # events/s while every worker had events to read
    cores: float  # busy meanwhile, workers and broker
    drained: float  # events/s to the last event
    windows: dict[int, str]  # digest by window key


def group_rate(bootstrap: str, topic: str, profile_path: Path, directory: Path, workers: int, broker_pid: int,
               run: int) -> GroupRun:
    """Events/s of `workers` workers in one group over the filled topic while every one of them
    still had events to read, the cores they and the broker kept busy meanwhile, the events/s to
    the last event, and their windows.

    The steady rate runs from the moment every partition has its one reader to the first worker's
    last event. The workers start a second or so apart, and the first reads all 8 partitions
    until the group forms, so one worker's share runs out before the other's: the rate to the last
    event is that of a backlog drained unevenly, not of a group under steady traffic."""
    group = f"scale-{workers}-{run}"
    started = [start_worker(bootstrap, topic, profile_path, directory, f"{group}-{i}", group, SCALE_PARTITIONS)
               for i in range(workers)]
    ports = [port for _, port in started]
    pids = [broker_pid] + [worker.pid for worker, _ in started]
    try:
        samples: list[tuple[float, list[float], float]] = []  # since the group is stable: time, counts, CPU
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not (samples and sum(samples[-1][1]) >= SCALE_EVENTS):
            # Once the group is stable only the counters are polled: the polls take the cores measured.
            if not samples:
                assigned = [set((get(port, "/health") or {}).get("partitions", [])) for port in ports]
                stable = all(assigned) and len(set().union(*assigned)) == SCALE_PARTITIONS \
                    and sum(map(len, assigned)) == SCALE_PARTITIONS  # every partition has its one reader
            if samples or stable:
                counts = [scrape(port) for port in ports]
                samples.append((time.perf_counter(), counts, cpu_seconds(pids)))
            time.sleep(0.05)
        if len(samples) < 2 or sum(samples[-1][1]) < SCALE_EVENTS:
            raise RuntimeError(f"the group of {workers} did not read the topic; see the logs in {directory}")
        first, last = samples[0], samples[-1]
        # The first sample at which some worker had counted all it would: the end of the steady part.
        steady = next(s for s in samples if any(c >= total for c, total in zip(s[1], last[1], strict=True)))
        elapsed = steady[0] - first[0]
        return GroupRun((sum(steady[1]) - sum(first[1])) / elapsed, (steady[2] - first[2]) / elapsed,
                        (sum(last[1]) - sum(first[1])) / (last[0] - first[0]), digests(ports, SCALE_EVENTS))
    finally:
        for worker, _ in started:
            worker.terminate()
        for worker, _ in started:
            worker.wait(timeout=30)


def replay(synthetic: Profile, lines: list[bytes]) -> dict[int, str]:
    """The digest of each 5-s window of the events, sketched offline by the core."""
    parser, analyzer = EventParser(synthetic.spec, structs=True), Analyzer(synthetic)
    keys = (1_700_000_000_000 + np.arange(len(lines)) // 10) // WINDOW_MS * WINDOW_MS
    found = {}
    for key in np.unique(keys).tolist():
        rows = np.flatnonzero(keys == key)
        parsed, invalid = parser.parse_many([lines[i] for i in rows.tolist()])
        assert not invalid
        found[key] = analyzer.observe(to_columns(parsed, synthetic.spec), rows)[0].digest()  # as `check` does
    return found


def long_run(bootstrap: str, synthetic: Profile, profile_path: Path, directory: Path) -> None:
    topic = "long.requests"
    lines = events(LONG_EVENTS)
    asyncio.run(ensure_topics({"bootstrap_servers": bootstrap}, {topic: LONG_PARTITIONS}))
    worker, port = start_worker(bootstrap, topic, profile_path, directory, "long", "long", LONG_PARTITIONS)
    try:
        deadline = time.monotonic() + 120
        while not (get(port, "/health") or {}).get("ready") and time.monotonic() < deadline:
            time.sleep(0.2)
        producer = threading.Thread(target=lambda: asyncio.run(fill(bootstrap, topic, lines, LONG_PARTITIONS)))
        started = time.perf_counter()
        producer.start()
        marks = {250_000: 0.0, 500_000: 0.0, LONG_EVENTS: 0.0}
        samples: list[tuple[float, float]] = []  # (events counted, RSS) at every poll
        highest_lag, counted = 0.0, 0.0
        deadline = time.monotonic() + 900
        while counted < LONG_EVENTS and time.monotonic() < deadline:
            counted = scrape(port)
            highest_lag = max(highest_lag, metric_sum(port, "synthdrift_consumer_lag_messages"))
            rss = rss_mib(worker.pid)
            samples.append((counted, rss))
            for mark in marks:
                if counted >= mark and not marks[mark]:
                    marks[mark] = rss
            time.sleep(0.25)
        elapsed = time.perf_counter() - started
        producer.join()
        time.sleep(3)  # a flush or two: the lag gauge is set at each
        final_lag = metric_sum(port, "synthdrift_consumer_lag_messages")
        live = digests([port], LONG_EVENTS)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    offline = replay(synthetic, lines)
    same = live == offline
    print(f"a million events, produced while one worker reads ({LONG_PARTITIONS} partitions):")
    print(f"  {counted:,.0f} events in {elapsed:.1f} s "
          f"({counted / elapsed:,.0f} events/s end to end, producer included)")
    print(f"  lag: highest {highest_lag:,.0f} messages, after the last event {final_lag:,.0f} "
          f"-> {'returned to 0' if final_lag == 0 else 'NOT back to 0'}")
    # The allocator's heap rises and falls by ~50 MiB as batches come and go: a leak shows as a
    # second half whose highest RSS is above the first half's.
    first_half = max(rss for counted, rss in samples if counted < LONG_EVENTS / 2)
    second_half = max(rss for counted, rss in samples if counted >= LONG_EVENTS / 2)
    print("  RSS: " + ", ".join(f"{rss:.0f} MiB at {mark:,}" for mark, rss in marks.items())
          + f"; highest {first_half:.0f} MiB in the first half, {second_half:.0f} in the second"
          + f" -> {'flat' if second_half < 1.1 * first_half else 'NOT flat'}")
    print(f"  windows: {len(live)} live, {len(offline)} replayed offline; digests "
          f"{'all equal: nothing lost or counted twice' if same else 'DIFFER'}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        directory = Path(tmp)
        synthetic, profile_path = written_profile(directory)
        topic = "scale.requests"
        asyncio.run(fill(broker.bootstrap_servers, topic, events(SCALE_EVENTS), SCALE_PARTITIONS))
        assert broker.process is not None
        runs: dict[int, list[GroupRun]] = {1: [], 2: []}
        for run in range(SCALE_REPEATS):  # alternated: a busy spell of the machine hits both alike
            for workers in (1, 2):
                runs[workers].append(group_rate(broker.bootstrap_servers, topic, profile_path, directory, workers,
                                                broker.process.pid, run))
        one, two = ({field: statistics.median(getattr(r, field) for r in runs[workers])
                     for field in ("rate", "cores", "drained")} for workers in (1, 2))
        windows = [r.windows for workers in (1, 2) for r in runs[workers]]
        print(f"scale-out: {SCALE_EVENTS:,} events on {SCALE_PARTITIONS} partitions, filled before the workers start; "
              f"medians of {SCALE_REPEATS} runs")
        ratio = two["rate"] / one["rate"]
        print(f"  1 worker: {one['rate']:10,.0f} events/s, {one['cores']:.2f} cores busy (worker and broker)")
        print(f"  2 workers in one group, while both read: {two['rate']:10,.0f} events/s, {two['cores']:.2f} cores "
              f"busy   ratio {ratio:.2f}   goal >= 1.6 -> {'met' if ratio >= 1.6 else 'NOT met'}")
        print(f"  to the last event (one worker's share ran out first): 1 worker {one['drained']:,.0f}, "
              f"2 workers {two['drained']:,.0f} events/s, ratio {two['drained'] / one['drained']:.2f}")
        # At the same CPU an event, 1.6x the events takes 1.6x the cores the one worker kept busy.
        print(f"  1.6x one worker takes about {1.6 * one['cores']:.2f} of this machine's {os.cpu_count()} cores")
        print(f"  windows: {len(windows[0])} in each of {len(windows)} runs; digests "
              f"{'identical' if all(w == windows[0] for w in windows) else 'DIFFER'}")
        long_run(broker.bootstrap_servers, synthetic, profile_path, directory)


if __name__ == "__main__":
    main()
