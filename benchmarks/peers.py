"""synthdrift next to its peers, Evidently and NannyML, on the same real data.

Scenarios (the test suite's real data, `tests/realdata.py`):
  loans-real       openintro loans, random split: reference 2,000 rows, current the other 8,000
  loans-synthetic  reference: a Gaussian copula of 2,000 real loans; current: the other 8,000 real loans
  flights-real     nycflights13 January-February, random split: reference 20,000, current the rest

Every tool compares windows of 2,000 current rows with the reference, over the spec's features
(the segment column is in the data, not a feature): synthdrift `observe` + `evaluate` per window
(warning or critical on all traffic), Evidently one `DataDriftPreset` report per window (its
per-column drift tests), NannyML's `UnivariateDriftCalculator` (alerts; its default thresholds
need several reference chunks, so a reference of fewer than 5 windows gets smaller chunks).
Counted: the columns flagged in any window and the (window, column) flags. Timed, median of 3
repetitions, without install, imports or reading the data (but synthdrift's profile build reads
its reference file): the fit (profile build, reference dataset or `fit`), then two passes over
all windows, per current event: the first right after the fit, the second again, when
synthdrift's calibration of its bounds is cached. Each peer's ratio is to synthdrift's pass.

Run from the repository root: `.venv/bin/python benchmarks/peers.py`. The peers get their own
virtual environments under benchmarks/.peers/ (installed on first run, ~3 GB), and run in
subprocesses with their interpreter, which re-enter this file with `--peer NAME JOB`.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / ".peers"
PACKAGES = {"evidently": ["evidently", "pandas<3"], "nannyml": ["nannyml", "statsmodels"]}
QUIET = {"DO_NOT_TRACK": "1", "NML_DISABLE_USAGE_LOGGING": "1"}  # no usage telemetry
WINDOW = 2_000
REPEATS = 3
REFERENCE_CHUNKS = 5  # NannyML's thresholds are the mean + 3 std of the reference chunks' scores

Job = dict[str, Any]  # a scenario on disk: reference and current Parquet files, features, window
Outcome = dict[str, Any]  # flags per column, windows, fit and window seconds per repetition


# Peers: run by the peer's own interpreter, from Parquet files; no project imports here.

def timed(run: Callable[..., Any], *arguments: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run(*arguments)
    return time.perf_counter() - started, result


def repeat(fit: Callable[[], Any], windows: Callable[[Any], dict[str, int]], count: int) -> Outcome:
    """`count` times: fit, then two passes over all windows (the second finds any cache warm)."""
    times: dict[str, list[float]] = {"fit": [], "first": [], "second": []}
    flags: dict[str, int] = {}
    for _ in range(count):
        seconds, fitted = timed(fit)
        times["fit"].append(seconds)
        for run in ("first", "second"):
            seconds, flags = timed(windows, fitted)
            times[run].append(seconds)
    return {"flags": flags, **times}


def evidently(job: Job) -> Outcome:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    features = job["numeric"] + job["categorical"]
    definition = DataDefinition(numerical_columns=job["numeric"], categorical_columns=job["categorical"])
    reference, current = pd.read_parquet(job["reference"]), pd.read_parquet(job["current"])
    starts = range(0, len(current), job["window"])

    def windows(fitted: Any) -> dict[str, int]:
        flags = dict.fromkeys(features, 0)
        for start in starts:
            window = Dataset.from_pandas(current.iloc[start:start + job["window"]], data_definition=definition)
            report = Report([DataDriftPreset(columns=features)], include_tests=True)
            for test in report.run(current_data=window, reference_data=fitted).dict()["tests"]:
                params = test["metric_config"]["params"]
                if params["type"].endswith(":ValueDrift") and test["status"] == "FAIL":
                    flags[params["column"]] += 1
        return flags

    outcome = repeat(lambda: Dataset.from_pandas(reference, data_definition=definition), windows, job["repeats"])
    return outcome | {"window": job["window"], "windows": len(starts)}


def nannyml(job: Job) -> Outcome:
    import warnings

    import nannyml
    import pandas as pd

    features = job["numeric"] + job["categorical"]
    reference, current = pd.read_parquet(job["reference"]), pd.read_parquet(job["current"])
    chunk = min(job["window"], len(reference) // REFERENCE_CHUNKS)
    warnings.simplefilter("ignore")  # "number of chunks is too low" below 6; said in the table's notes

    def fit() -> Any:
        calculator = nannyml.UnivariateDriftCalculator(column_names=features, treat_as_categorical=job["categorical"],
                                                       chunk_size=chunk)
        return calculator.fit(reference)

    def windows(fitted: Any) -> dict[str, int]:
        results = fitted.calculate(current).filter(period="analysis").to_df()
        return {name: int(results[(name, "jensen_shannon", "alert")].sum()) for name in features}

    outcome = repeat(fit, windows, job["repeats"])
    return outcome | {"window": chunk, "windows": math.ceil(len(current) / chunk)}


PEER_RUNS = {"evidently": evidently, "nannyml": nannyml}


# The project's side: venvs, scenarios, synthdrift itself, the table.

def python_of(peer: str) -> Path:
    return PEERS / peer / "bin" / "python"


def install(peer: str) -> float | None:
    """Creates the peer's venv and installs it; the seconds taken, or None if it was there."""
    if python_of(peer).exists():
        return None
    started = time.perf_counter()
    for command in ([sys.executable, "-m", "venv", str(PEERS / peer)],
                    [str(python_of(peer)), "-m", "pip", "install", "--quiet", *PACKAGES[peer]]):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def scenarios(directory: Path) -> list[Job]:
    """The three scenarios, written as Parquet files under `directory`."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "tests"))
    from realdata import copula, flights, loans

    from monitor.core.columns import take

    spec, columns = loans()
    rows = np.random.default_rng(0).permutation(len(columns["state"]))
    cases = [("loans-real", spec, take(columns, rows[:2000]), take(columns, rows[2000:]))]
    rng = np.random.default_rng(1)
    rows = rng.permutation(len(columns["state"]))
    synthetic = copula(take(columns, rows[:2000]), spec, 2000, rng)
    cases.append(("loans-synthetic", spec, synthetic, take(columns, rows[2000:])))
    spec, columns = flights((1, 2))
    rows = np.random.default_rng(0).permutation(len(columns["dest"]))
    cases.append(("flights-real", spec, take(columns, rows[:20_000]), take(columns, rows[20_000:])))
    return [write(directory, *case) for case in cases]


def write(directory: Path, name: str, spec: Any, reference: dict[str, Any], current: dict[str, Any]) -> Job:
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {part: directory / f"{name}-{part}.parquet" for part in ("reference", "current")}
    pq.write_table(pa.table(reference), paths["reference"])
    pq.write_table(pa.table(current), paths["current"])
    kinds = spec.features.items()
    return {"name": name, "spec": spec, "rows": len(next(iter(current.values()))), "window": WINDOW,
            "repeats": REPEATS, "numeric": [f for f, kind in kinds if kind == "numeric"],
            "categorical": [f for f, kind in kinds if kind == "categorical"],
            **{part: str(path) for part, path in paths.items()}}


def synthdrift(job: Job) -> Outcome:
    """Profile the reference, then `observe` and `evaluate` every window, as tests/test_real_data.py does."""
    import numpy as np

    from monitor.core.analyzer import Analyzer
    from monitor.core.columns import concatenate
    from monitor.core.profile import build
    from monitor.core.severity import Severity
    from monitor.core.tables import read_chunks

    current = concatenate(list(read_chunks(job["current"], job["spec"])))
    starts = range(0, job["rows"], job["window"])

    def windows(analyzer: Analyzer) -> dict[str, int]:
        flags = dict.fromkeys(job["numeric"] + job["categorical"], 0)
        for start in starts:
            rows = np.arange(start, min(start + job["window"], job["rows"]))
            sketch, _ = analyzer.observe({name: values[rows] for name, values in current.items()}, rows)
            for result in analyzer.evaluate(sketch):
                if result.group.name == "all" and result.severity >= Severity.WARNING:
                    flags[result.feature] += 1
        return flags

    outcome = repeat(lambda: Analyzer(build(job["spec"], job["reference"])), windows, job["repeats"])
    return outcome | {"window": job["window"], "windows": len(starts)}


def peer(name: str, job: Job) -> Outcome:
    """One peer on one scenario, in a subprocess with the peer's interpreter."""
    arguments = json.dumps({k: v for k, v in job.items() if k != "spec"})
    done = subprocess.run([str(python_of(name)), __file__, "--peer", name, arguments], capture_output=True,
                          text=True, env=os.environ | QUIET)
    if done.returncode:
        raise RuntimeError(f"{name} on {job['name']} failed:\n{done.stderr[-3000:]}")
    outcome: Outcome = json.loads(done.stdout.splitlines()[-1])
    return outcome


def per_event(job: Job, outcome: Outcome, run: str) -> float:
    """Microseconds per current event of a pass over the windows, median over the repetitions."""
    return statistics.median(outcome[run]) / job["rows"] * 1e6


def row(tool: str, job: Job, outcome: Outcome, baseline: Outcome) -> str:
    """One line of the table; `baseline` is synthdrift's outcome on the same scenario."""
    flagged = sorted(name for name, count in outcome["flags"].items() if count)
    speeds = [(per_event(job, outcome, run), per_event(job, baseline, run)) for run in ("first", "second")]
    timing = "".join(f" {mine:>9,.1f} {mine / theirs:>6.1f}" for mine, theirs in speeds)
    return (f"{tool:<10} {job['name']:<16} {outcome['window']:>6,} {outcome['windows']:>7} "
            f"{len(flagged):>3}/{len(outcome['flags']):<3} {sum(outcome['flags'].values()):>5} "
            f"{statistics.median(outcome['fit']) * 1e3:>8,.0f}{timing}  {', '.join(flagged)}")


def main() -> None:
    for name in PACKAGES:
        seconds = install(name)
        print(f"{name}: " + ("venv present" if seconds is None else f"installed in {seconds:.0f} s"))
    print(f"{'tool':<10} {'scenario':<16} {'window':>6} {'windows':>7} {'flagged':>7} {'flags':>5} "
          f"{'fit ms':>8} {'µs/ev 1st':>9} {'ratio':>6} {'µs/ev 2nd':>9} {'ratio':>6}  columns flagged")
    with tempfile.TemporaryDirectory() as directory:
        for job in scenarios(Path(directory)):
            outcomes = {"synthdrift": synthdrift(job)} | {name: peer(name, job) for name in PACKAGES}
            for tool, outcome in outcomes.items():
                print(row(tool, job, outcome, outcomes["synthdrift"]), flush=True)
    print(f"flagged: columns flagged in any window, of all; flags: (window, column) pairs. Times: median of {REPEATS}; "
          "fit: profile build, reference dataset or `fit`; µs/ev: wall time of a pass over all windows per current "
          "event, 1st right after fit, 2nd again (synthdrift's calibration cached); ratio: over synthdrift's.")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--peer"]:
        print(json.dumps(PEER_RUNS[sys.argv[2]](json.loads(sys.argv[3]))))
    else:
        main()
