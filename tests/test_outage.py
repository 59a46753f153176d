"""Integration: a worker outlives its broker. The in-memory tansu loses every topic, offset and
commit when it restarts, the harshest restart there is: the worker must say it is unhealthy while
the broker is away, and judge the new traffic once it is back."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
from streaming import Stack, wait_for

from monitor.commands.broker import EmbeddedBroker
from monitor.commands.replay import simulate
from monitor.core.profile import Profile

START = 1_700_000_000.0


def health_status(port: int) -> int | None:
    """The HTTP status of /health, or None if nothing answered."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def test_new_traffic_is_judged_after_a_broker_restart(requests_profile_path: Path, tmp_path: Path) -> None:
    profile = Profile.load(requests_profile_path)
    before = [orjson.dumps(e) for e in simulate(profile, 4000, [], 0, seed=3, start_time=START)]
    after = [orjson.dumps(e) for e in simulate(profile, 4000, [], 0, seed=4, start_time=START + 600)]
    with EmbeddedBroker() as broker:
        stack = Stack(broker.bootstrap_servers, requests_profile_path, tmp_path)
        try:
            port = stack.start_worker()
            stack.produce(before)
            wait_for(lambda: sum(w["events"] for w in stack.windows().values()) == 4000, 60, "the first windows")
            broker.stop()
            wait_for(lambda: health_status(port) == 503, 60, "/health to report the outage")
            time.sleep(2)
            broker.start()
            stack.produce(after)
            new = lambda: sum(w["events"] for k, w in stack.windows().items() if k >= (START + 600) * 1000)  # noqa: E731
            # Reconnecting, finding the log gone, re-executing and rejoining: ~15 s quiet, ~35 s on a
            # busy machine (measured); far more time here, so that only a worker that never recovers fails.
            wait_for(lambda: new() >= 4000, 180, "the new traffic in windows")
            assert new() == 4000
            wait_for(lambda: health_status(port) == 200, 30, "/health to recover")
            log = next(tmp_path.glob(f"worker-{stack.group}-*.log")).read_text()
            assert log.count("ERROR") + log.count("WARNING") < 100
        finally:
            stack.stop()
