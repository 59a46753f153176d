"""Throughput and memory of the statistics core, next to a plain NumPy baseline run on the same data.

Core: for every window of 5,000 events with 20 numeric features and two segment fields, sketch
the batch (all traffic and every segment), feed the River detectors and judge every feature in
every segment. Baseline: np.histogram on the same bin edges and PSI against the reference, all
traffic only. Both read ready-made columns: JSON parsing is not measured here.

Run: `make bench` (or `python benchmarks/core.py`). Prints medians over repeats and the ratio.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from monitor.core.analyzer import Analyzer
from monitor.core.channels import NumericBins
from monitor.core.columns import Columns
from monitor.core.profile import Profile, build
from monitor.core.spec import Spec

FEATURES = [f"x{i:02d}" for i in range(20)]
WINDOW = 5_000
EVENTS = 200_000
REPEATS = 5
T = TypeVar("T")
SPEC = Spec(model="bench", features={name: "numeric" for name in FEATURES}, segments=("language", "region"))


def columns(rows: int, seed: int) -> Columns:
    rng = np.random.default_rng(seed)
    data: Columns = {name: rng.normal(i, 1 + i / 10, rows) for i, name in enumerate(FEATURES)}
    data["language"] = rng.choice(np.array(["en", "de", "fr"], dtype=object), rows, p=[0.6, 0.25, 0.15])
    data["region"] = rng.choice(np.array(["eu", "us", "apac"], dtype=object), rows, p=[0.5, 0.3, 0.2])
    return data


def windows(total: int, seed: int = 1) -> Iterator[Columns]:
    for start in range(0, total, WINDOW):
        yield columns(WINDOW, seed + start)


def profile(directory: Path) -> Profile:
    path = directory / "train.parquet"
    pq.write_table(pa.table(columns(50_000, seed=0)), path)
    return build(SPEC, path)


def run_core(analyzer: Analyzer, batches: list[Columns]) -> None:
    for i, batch in enumerate(batches):
        sketch, _ = analyzer.observe(batch, np.arange(i * WINDOW, (i + 1) * WINDOW))
        analyzer.evaluate(sketch)


def run_baseline(profile: Profile, batches: list[Columns]) -> None:
    edges = {c.name: c.bins.edges for c in profile.channels
             if isinstance(c.bins, NumericBins) and c.likeness is None}  # the features' own columns
    reference = {name: profile.reference.counts[name][0, 1:-2] / profile.reference.counts[name][0, 1:-2].sum()
                 for name in edges}
    for batch in batches:
        for name, bin_edges in edges.items():
            live, _ = np.histogram(batch[name], bins=bin_edges)
            q = (live / max(live.sum(), 1)) + 1e-4
            p = reference[name] + 1e-4
            float(np.sum((q - p) * np.log(q / p)))


def median_rate(run: Callable[[T, list[Columns]], None], subject: T, batches: list[Columns]) -> float:
    rates = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        run(subject, batches)
        rates.append(len(batches) * WINDOW / (time.perf_counter() - started))
    return statistics.median(rates)


def peak_memory(profile: Profile, total: int) -> int:
    """Peak bytes allocated by the core while streaming `total` events through it."""
    analyzer = Analyzer(profile)
    tracemalloc.start()
    for i, batch in enumerate(windows(total)):
        sketch, _ = analyzer.observe(batch, np.arange(i * WINDOW, (i + 1) * WINDOW))
        analyzer.evaluate(sketch)
        del batch, sketch
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        synthetic = profile(Path(directory))
    batches = list(windows(EVENTS))
    analyzer = Analyzer(synthetic)
    started = time.perf_counter()
    run_core(analyzer, batches)  # the first pass also fills the calibration cache
    cold = len(batches) * WINDOW / (time.perf_counter() - started)
    core = median_rate(run_core, analyzer, batches)
    baseline = median_rate(run_baseline, synthetic, batches)
    print(f"statistics core: {len(FEATURES)} numeric features, 2 segment fields, windows of {WINDOW:,}, "
          f"{EVENTS:,} events, median of {REPEATS}")
    print(f"  core (sketch all + 6 segments, detectors, judge): {core:12,.0f} events/s "
          f"(first pass, calibrating: {cold:,.0f})")
    print(f"  baseline (np.histogram + PSI, all traffic only):  {baseline:12,.0f} events/s")
    print(f"  core / baseline: {core / baseline:.2f}   goal: core >= 200,000 events/s -> "
          f"{'met' if core >= 200_000 else 'NOT met'}")
    short, long = peak_memory(synthetic, 50_000), peak_memory(synthetic, 400_000)
    print(f"  peak traced memory: {short / 2**20:.1f} MiB over 50,000 events, {long / 2**20:.1f} MiB over "
          f"400,000 (ratio {long / short:.2f}; flat means ~1)")


if __name__ == "__main__":
    main()
