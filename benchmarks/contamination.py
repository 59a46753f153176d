"""`synthdrift contamination` at scale: 1,000,000 training rows x 100,000 evaluation rows of short text.

The training tickets come from the test suite's template generator (`tests/textdata.py`); the
evaluation set holds 5% copies, 5% near copies (a word more) and 90% fresh tickets from the same
templates, the worst case for the near-duplicate search (every text has hundreds of thousands of
relatives). Each run is a fresh process, so its peak RSS is its own. The baseline, in the same run,
is plain hashing: each training text's normalised words hashed and looked up among the
evaluation's (what an exact-duplicate check alone costs).

Run: `make bench` (or `python benchmarks/contamination.py`). Prints medians and the ratio.
"""

from __future__ import annotations

import csv
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
TRAIN, EVAL = 1_000_000, 100_000
REPEATS = 3
SPEC = "model: tickets\nfeatures: {text: text}\n"


def write_data(directory: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from textdata import tickets

    rng = np.random.default_rng(0)
    train = tickets(TRAIN, rng)
    copies = [train[i] for i in rng.choice(TRAIN, EVAL // 10, replace=False)]
    evaluation = copies[: EVAL // 20] + [t + " thanks" for t in copies[EVAL // 20:]] + tickets(EVAL - len(copies), rng)
    for name, texts in (("train.csv", train), ("eval.csv", evaluation)):
        with (directory / name).open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["text"])
            writer.writerows([t] for t in texts)
    (directory / "spec.yaml").write_text(SPEC)


def run(kind: str, directory: Path) -> None:
    """One measured run in this process: prints seconds, peak RSS and the figures found."""
    from monitor.commands.contamination import scan
    from monitor.core.contamination import tokens
    from monitor.core.spec import Spec
    from monitor.core.tables import read_chunks

    spec = Spec.load(directory / "spec.yaml")
    started = time.perf_counter()
    if kind == "scan":
        report = scan(spec, directory / "train.csv", directory / "eval.csv")
        found = {k: report[k]["share"] for k in ("exact_duplicates", "near_duplicates", "dirty_ngrams",
                                                   "shared_templates")}
    else:
        evaluation = {hash(" ".join(tokens(t))) for chunk in read_chunks(directory / "eval.csv", spec)
                      for t in chunk["text"].tolist()}
        hits = sum(hash(" ".join(tokens(t))) in evaluation for chunk in read_chunks(directory / "train.csv", spec)
                   for t in chunk["text"].tolist())
        found = {"train rows with an evaluation twin": hits}
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sys.stdout.buffer.write(orjson.dumps({"seconds": seconds, "rss_mib": peak, "found": found}))


def measure(kind: str, directory: Path) -> dict[str, Any]:
    runs = [orjson.loads(subprocess.run([sys.executable, __file__, "--run", kind, str(directory)], check=True,
                                        capture_output=True).stdout) for _ in range(REPEATS)]
    return {"seconds": statistics.median(r["seconds"] for r in runs),
            "rss_mib": statistics.median(r["rss_mib"] for r in runs), "found": runs[0]["found"]}


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        write_data(directory)
        scanned, baseline = measure("scan", directory), measure("baseline", directory)
    print(f"contamination: {TRAIN:,} training x {EVAL:,} evaluation rows of short text "
          f"(template tickets; 5% copies, 5% near copies), median of {REPEATS} fresh processes")
    for label, result in (("scan (duplicates, near duplicates, n-grams, templates)", scanned),
                          ("baseline (hash of each text's words, looked up)     ", baseline)):
        print(f"  {label}: {result['seconds']:7.1f} s  {TRAIN / result['seconds']:10,.0f} training rows/s  "
              f"peak RSS {result['rss_mib']:6.0f} MiB")
    print(f"  scan / baseline: {baseline['seconds'] / scanned['seconds']:.2f} of its speed; found "
          + ", ".join(f"{k} {v:.3f}" for k, v in scanned["found"].items()))
    print(f"  goal: within a few minutes on 2 cores -> {'met' if scanned['seconds'] < 300 else 'NOT met'}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--run"]:
        sys.path.insert(0, str(ROOT))
        run(sys.argv[2], Path(sys.argv[3]))
    else:
        main()
