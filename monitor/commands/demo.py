"""`synthdrift demo`: the whole thing on one machine, with a live terminal view.

It profiles the bundled synthetic support tickets, starts the embedded broker and a worker,
streams production traffic whose reality departs from the synthetic data halfway through (Spanish
tickets, longer and messier texts, larger amounts, a router that gets worse), and shows severities,
coverage gaps and alerts as the windows close. It stops every process it started when the stream
is done, or at Ctrl-C.
"""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import yaml

from monitor.commands import example
from monitor.commands.broker import EmbeddedBroker, free_port
from monitor.commands.replay import produce
from monitor.config import Topics, worker_config
from monitor.core.profile import build, summary
from monitor.core.spec import Spec
from monitor.stream.topics import ensure_topics_sync, topics_to_create

CLEAR = "\033[2J\033[H"
COLOURS = {"ok": "\033[32m", "warning": "\033[33m", "critical": "\033[31m", "resolved": "\033[32m"}
RESET = "\033[0m"


def run(directory: Path, events: int = 60_000, rate: float = 3000.0) -> int:
    tty = sys.stdout.isatty()
    say = functools.partial(print, flush=True)
    say(f"profiling the bundled synthetic training set into {directory}/ …")
    paths = example.write(directory, events=0)
    profile = build(Spec.load(paths["spec"]), paths["train"])
    (directory / "profile.json").write_bytes(profile.to_json())
    say(summary(profile).split("\n\n")[0])
    with EmbeddedBroker() as broker:
        port = free_port()
        config_path = directory / "monitor.yaml"
        config_path.write_text(yaml.safe_dump({
            "profile": str(directory / "profile.json"),
            "kafka": {"bootstrap_servers": broker.bootstrap_servers},
            "window": {"seconds": 2, "idle_seconds": 10, "chunk_events": 1000, "flush_seconds": 0.5},
            "metrics": {"port": port},
        }))
        config = worker_config(config_path)
        ensure_topics_sync(config.kafka.client_options(), topics_to_create(config, profile.spec))
        log = (directory / "worker.log").open("wb")
        worker = subprocess.Popen([sys.executable, "-m", "monitor", "worker", "--config", str(config_path),
                                   "--loglevel", "info"], stdout=log, stderr=subprocess.STDOUT)
        try:
            say(f"broker on {broker.bootstrap_servers}; worker starting (log: {directory / 'worker.log'}) …")
            if not _wait_ready(port, worker):
                say(f"the worker did not become ready; see {directory / 'worker.log'}")
                return 1
            say(f"metrics: http://127.0.0.1:{port}/metrics   health: http://127.0.0.1:{port}/health")
            producer = threading.Thread(target=_stream, args=(broker.bootstrap_servers, config.topics, events, rate),
                                        daemon=True)
            producer.start()
            _watch(port, producer, events, tty, say)
        except KeyboardInterrupt:
            say("\nstopping …")
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
    return 0


def _wait_ready(port: int, worker: subprocess.Popen[bytes], timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.poll() is None:
        body = _get(port, "/health")
        if body and orjson.loads(body)["ready"]:
            return True
        time.sleep(0.5)
    return False


def _get(port: int, path: str) -> bytes | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return bytes(response.read())
    except OSError:
        return None


def _stream(bootstrap: str, topics: Topics, events: int, rate: float) -> None:
    """Production traffic, stamped with the time it is sent (as a model server would: a producer
    that falls behind its rate does not send events from the past); reality departs halfway through."""

    def lines() -> Any:
        for event in example.live_events(events, drift_at=events // 2):
            event["timestamp"] = time.time()
            yield orjson.dumps(event)

    asyncio.run(produce({"bootstrap_servers": bootstrap}, topics, lines(), rate=rate))


def _watch(port: int, producer: threading.Thread, events: int, tty: bool, say: Any) -> None:
    shown_alerts: set[str] = set()
    shown_windows: set[int] = set()
    idle_since: float | None = None
    while True:
        body = _get(port, "/status")
        status = orjson.loads(body) if body else {"windows": []}
        windows = status["windows"]
        counted = sum(w["events"] for w in windows)
        if tty:
            print(CLEAR + _screen(status, port, counted, events), flush=True)
        else:
            for window in windows:
                if window["key"] not in shown_windows:
                    shown_windows.add(window["key"])
                    say(_window_line(window))
        for window in windows:
            for alert in window["alerts"]:
                if alert["alert_id"] not in shown_alerts:
                    shown_alerts.add(alert["alert_id"])
                    if not tty:
                        say("  ALERT " + _alert_line(alert))
        late = status.get("late", 0)
        if not producer.is_alive() and counted + late >= events:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 1:
                after = f"; {late:,} came after their window had closed (late)" if late else ""
                say(f"done: {counted:,} events in {len(windows)} windows{after}, {len(shown_alerts)} alert events")
                return
        time.sleep(1)


def _paint(severity: str) -> str:
    return f"{COLOURS.get(severity, '')}{severity}{RESET}"


def _window_line(window: dict[str, Any]) -> str:
    flagged = ", ".join(f"{r['feature']}{'' if r['segment'] is None else '@' + _segment(r['segment'])}"
                        f" {r['severity']}" for r in window["results"][:6])
    gaps = ", ".join(f"{g['field']}={g['value']} {g['live_share']:.0%}" for g in window["coverage_gaps"][:3])
    return (f"window {time.strftime('%H:%M:%S', time.localtime(window['key'] / 1000))}: {window['events']:>6,} "
            f"events, worst {window['worst']}" + (f"; flagged: {flagged}" if flagged else "")
            + (f"; gaps: {gaps}" if gaps else ""))


def _alert_line(alert: dict[str, Any]) -> str:
    return (f"{alert['feature']} [{_segment(alert['segment'])}] {alert['previous']} -> {alert['state']} "
            f"({', '.join(alert['breaches'])})")


def _segment(segment: dict[str, str] | None) -> str:
    return "all" if segment is None else ",".join(f"{k}={v}" for k, v in segment.items())


def _screen(status: dict[str, Any], port: int, counted: int, events: int) -> str:
    windows = status["windows"]
    lines = [f"synthdrift demo — profile {status.get('profile', '?')} — {counted:,}/{events:,} events judged",
             f"metrics http://127.0.0.1:{port}/metrics   Ctrl-C stops", ""]
    if windows:
        last = windows[-1]
        lines.append(f"last window: {last['events']:,} events, worst {_paint(last['worst'])}")
        lines.append(f"{'feature':22} {'segment':20} {'severity':10} statistic")
        for result in last["results"][:15]:
            statistic = result["breaches"][0] if result["breaches"] else ""
            value = result["stats"].get(statistic)
            lines.append(f"{result['feature']:22} {_segment(result['segment']):20} "
                         f"{_paint(result['severity']):19} {statistic} {value if value is None else round(value, 3)}")
        if last["coverage_gaps"]:
            lines.append("coverage gaps: " + ", ".join(f"{g['field']}={g['value']} {g['live_share']:.0%}"
                                                       for g in last["coverage_gaps"][:5]))
    alerts = [a for w in windows for a in w["alerts"]][-10:]
    if alerts:
        lines += ["", "alerts:"] + [f"  {_paint(a['state'])} {_alert_line(a)}" for a in alerts]
    lines += ["", "windows: " + "".join(f"{COLOURS[w['worst']]}■{RESET}" for w in windows[-60:])]
    return "\n".join(lines)
