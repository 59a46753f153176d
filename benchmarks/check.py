"""`synthdrift check` end to end, and how fast the command line starts.

Check: a file of 100,000 live events (20 numeric features, two segment fields, ~500 bytes each)
through `check()` (parse, validate, columns, sketch, detectors, judge every window of 5,000),
next to a plain `orjson.loads` loop over the same file's lines. Start-up: the wall time of
`synthdrift --help` and of `synthdrift check` on 100 events, each a fresh process.

Run: `make bench` (or `python benchmarks/check.py`). Prints medians and the ratio.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import orjson
from core import profile
from worker import events

from monitor.commands.check import check
from monitor.core.profile import Profile

EVENTS = 100_000
REPEATS = 5
COMMAND = [sys.executable, "-m", "monitor"]


def median_seconds(run: Callable[[], object], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def check_file(synthetic: Profile, path: Path) -> None:
    with path.open("rb") as lines:
        report = check(synthetic, lines)
    assert report.events == EVENTS and report.invalid == 0


def orjson_loop(path: Path) -> None:
    with path.open("rb") as lines:
        for line in lines:
            orjson.loads(line)


def command(*arguments: str) -> None:
    subprocess.run([*COMMAND, *arguments], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        synthetic = profile(directory)
        profile_path = directory / "profile.json"
        profile_path.write_bytes(synthetic.to_json())
        lines = events(EVENTS)
        live, small = directory / "live.jsonl", directory / "small.jsonl"
        live.write_bytes(b"\n".join(lines) + b"\n")
        small.write_bytes(b"\n".join(lines[:100]) + b"\n")
        check_file(synthetic, live)  # fills the calibration cache, as any long run would
        checked = EVENTS / median_seconds(lambda: check_file(synthetic, live))
        baseline = EVENTS / median_seconds(lambda: orjson_loop(live))
        help_seconds = median_seconds(lambda: command("--help"))
        small_seconds = median_seconds(lambda: command("check", "--profile", str(profile_path), "--input", str(small)))
    print(f"check end to end: {EVENTS:,} events of {len(lines[0])} bytes, 20 numeric features, 2 segment fields, "
          f"windows of 5,000, median of {REPEATS}")
    print(f"  check (parse, validate, columns, sketch, detectors, judge): {checked:12,.0f} events/s")
    print(f"  baseline (orjson.loads per line of the same file):           {baseline:12,.0f} events/s")
    print(f"  check / baseline: {checked / baseline:.2f}   goal >= 0.5 -> "
          f"{'met' if checked >= baseline / 2 else 'NOT met'}")
    print("start-up, a fresh process each, median of 5:")
    print(f"  synthdrift --help:            {help_seconds:.2f} s   goal < 0.5 s -> "
          f"{'met' if help_seconds < 0.5 else 'NOT met'}")
    print(f"  synthdrift check, 100 events: {small_seconds:.2f} s   goal < 1 s -> "
          f"{'met' if small_seconds < 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
