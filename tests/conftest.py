"""Shared fixtures: data sets made here, profiles built from them by the real code."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any, Generator, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scenario
import yaml

from monitor.commands import example
from monitor.commands.broker import EmbeddedBroker
from monitor.core.analyzer import Analyzer
from monitor.core.columns import Columns, take, to_labels
from monitor.core.profile import Profile, ProfileSettings, build
from monitor.core.slices import Slice
from monitor.core.spec import Spec

WORKER_LOG_LINES = 80


def live(rng: np.random.Generator, rows: int, shift: float = 0.0) -> Columns:
    return {
        "amount": rng.lognormal(3 + shift, 0.5, rows),
        "score": rng.normal(0, 1, rows),
        "channel": to_labels(rng.choice(["web", "app", "email"], rows, p=[0.5, 0.3, 0.2])),
        "body": to_labels(rng.choice(["my order is late", "refund please", "cannot log in to my account"], rows)),
        "language": to_labels(rng.choice(["en", "de"], rows, p=[0.7, 0.3])),
    }


def tool(name: str) -> str:
    """The path of a Prometheus tool; `make test` installs them."""
    path = shutil.which(name)
    assert path, f"{name} is not installed: `make test` installs Debian's prometheus and prometheus-alertmanager"
    return path


def build_profile(directory: Path, spec: Spec, columns: dict[str, Any], **settings: Any) -> Profile:
    """A profile of `columns` (written to Parquet first, as a user's table would be)."""
    path = directory / "train.parquet"
    pq.write_table(pa.table(columns), path)
    return build(spec, path, ProfileSettings(**settings))


def window_slices(profile: Profile, live: Columns, window: int = 2000) -> list[list[Slice]]:
    """The departing slices of every full window of `live`, through the core as `check` runs it."""
    analyzer = Analyzer(profile)
    events = len(next(iter(live.values())))
    found = []
    for start in range(0, events - window + 1, window):
        rows = np.arange(start, start + window)
        sketch, _ = analyzer.observe(take(live, rows), rows)
        found.append(analyzer.slices(sketch))
    return found


@pytest.fixture(scope="session")
def scenario_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The acceptance scenario on disk: spec, 50,000 training rows, 100,000 live events."""
    directory = tmp_path_factory.mktemp("scenario")
    files = {"spec": directory / "spec.yaml", "train": directory / "train.csv", "live": directory / "live.jsonl"}
    files["spec"].write_text(yaml.safe_dump(scenario.SPEC))
    scenario.write_training(files["train"])
    scenario.write_events(files["live"])
    return files


@pytest.fixture(scope="session")
def scenario_profile(scenario_files: dict[str, Path]) -> Profile:
    return build(Spec.load(scenario_files["spec"]), scenario_files["train"])


@pytest.fixture(scope="session")
def small_profile(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    """Two numeric features, one categorical, one text, a segment field; 4,000 rows."""
    rng = np.random.default_rng(5)
    rows = 4000
    columns = {
        "amount": rng.lognormal(3, 0.5, rows),
        "score": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(0, 1, rows)),
        "channel": rng.choice(["web", "app", "email"], rows, p=[0.5, 0.3, 0.2]),
        "body": rng.choice(["my order is late", "refund please", "cannot log in to my account"], rows),
        "language": rng.choice(["en", "de"], rows, p=[0.7, 0.3]),
    }
    spec = Spec(model="small", features={"amount": "numeric", "score": "numeric", "channel": "categorical",
                                         "body": "text"}, segments=("language",))
    return build_profile(tmp_path_factory.mktemp("small"), spec, columns, min_segment_rows=100)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed streaming test shows the end of its workers' logs (CI keeps no files)."""
    report = yield
    directory = getattr(item, "funcargs", {}).get("tmp_path")
    if report.failed and directory is not None:
        for log in sorted(Path(directory).glob("worker-*.log")):
            tail = log.read_text(errors="replace").splitlines()[-WORKER_LOG_LINES:]
            report.sections.append((f"end of {log.name}", "\n".join(tail)))
    return report


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    external = os.environ.get("SYNTHDRIFT_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def profile_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("stream-profile")
    paths = example.write(directory, rows=4000, events=10)
    profile = build(Spec.load(paths["spec"]), paths["train"], ProfileSettings(min_segment_rows=100))
    (directory / "profile.json").write_bytes(profile.to_json())
    return directory / "profile.json"


@pytest.fixture(scope="session")
def requests_profile_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's profile without predictions and labels: a worker of it reads requests only."""
    directory = tmp_path_factory.mktemp("requests-profile")
    paths = example.write(directory, rows=4000, events=10)
    spec = dataclasses.replace(Spec.load(paths["spec"]), prediction_label=None, prediction_score=None, label=None)
    profile = build(spec, paths["train"], ProfileSettings(min_segment_rows=100))
    (directory / "profile.json").write_bytes(profile.to_json())
    return directory / "profile.json"
