"""The streaming worker's pure parts: configuration, joins, alert states, metrics labels, the order of
a reader's deliveries."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import build_profile
from prometheus_client import CollectorRegistry

from monitor.commands.replay import Drift, simulate, split
from monitor.config import ConfigError, Topics, WorkerConfig, worker_config
from monitor.core.alerts import AlertStates
from monitor.core.analyzer import Analyzer
from monitor.core.channels import CategoryBins
from monitor.core.columns import to_labels
from monitor.core.events import to_columns
from monitor.core.profile import Profile
from monitor.core.severity import Severity
from monitor.core.spec import Spec
from monitor.core.types import AlertSettings, CoverageGap, DriftSettings, FeatureResult, Group
from monitor.export.metrics import Metrics
from monitor.stream.chunks import Chunk
from monitor.stream.join import JoinBuffer
from monitor.stream.reader import TrafficReader


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump({"profile": "p.json", "kafka": {"bootstrap_servers": "a:1"},
                                    "window": {"seconds": 30}}))
    config = worker_config(path, {"SYNTHDRIFT_KAFKA__BOOTSTRAP_SERVERS": "b:2", "SYNTHDRIFT_WINDOW__SECONDS": "5",
                                  "SYNTHDRIFT_METRICS__PORT": "9100", "OTHER": "x"})
    assert config.kafka.bootstrap_servers == "b:2" and config.window.seconds == 5 and config.metrics.port == 9100
    assert config.profile == Path("p.json")


def test_sasl_password_comes_from_a_file_never_the_repo(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    config = worker_config(None, {"SYNTHDRIFT_PROFILE": "p.json",
                                  "SYNTHDRIFT_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                                  "SYNTHDRIFT_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
                                  "SYNTHDRIFT_KAFKA__SASL_USERNAME": "monitor",
                                  "SYNTHDRIFT_KAFKA__SASL_PASSWORD_FILE": str(secret)})
    options = config.kafka.client_options()
    assert options["sasl_plain_password"] == "s3cret" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize("environ, message", [
    ({}, "no profile"),
    ({"SYNTHDRIFT_PROFILE": "p", "SYNTHDRIFT_WINDOW__CHUNK_EVENTS": "0"}, "chunk_events"),
    ({"SYNTHDRIFT_PROFILE": "p", "SYNTHDRIFT_KAFKA__SASL_MECHANISM": "PLAIN"}, "sasl_username"),
    ({"SYNTHDRIFT_PROFILE": "p", "SYNTHDRIFT_TOPICS__REQUSTS": "x"}, "'requsts' was unexpected"),
])
def test_bad_worker_configuration_is_one_line(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        worker_config(None, environ)
    assert "\n" not in str(error.value)


def test_unmatched_join_halves_expire_and_are_counted() -> None:
    join = JoinBuffer(ttl=10, max_pending=2)
    join.request("a", {}, {}, None, now=0)
    join.prediction("b", {"label": 1}, now=0)
    join.expire(now=5)
    assert join.pending() == 2
    join.expire(now=11)
    assert join.pending() == 0
    assert join.outcomes[("request", "expired")] == 1 and join.outcomes[("prediction", "expired")] == 1


def test_the_join_buffer_is_bounded() -> None:
    join = JoinBuffer(ttl=1000, max_pending=3)
    for i in range(10):
        join.request(f"r{i}", {}, {}, None, now=i)
    assert join.pending() == 3 and join.outcomes[("request", "expired")] == 7
    assert join.prediction("r9", {"label": 1}, now=11)  # the newest ones are kept


def result(severity: Severity, hold: Severity | None = None) -> FeatureResult:
    return FeatureResult("amount", Group(), "numeric", 500, {"psi": 0.3}, severity, ("psi",),
                         severity if hold is None else hold)


def test_alerts_enter_after_consecutive_windows_and_leave_below_the_lowered_thresholds() -> None:
    states = AlertStates(AlertSettings(enter_windows=2))
    W, C, OK = Severity.WARNING, Severity.CRITICAL, Severity.OK
    sequence = [result(W), result(OK), result(W), result(W), result(C), result(C),
                result(OK, hold=C), result(OK, hold=W), result(OK)]
    events = [[change.name for change in states.advance([r])] for r in sequence]
    assert events == [[], [], [], ["warning"], [], ["critical"], [], ["warning"], ["resolved"]]
    assert states.state("amount", "all") == OK


def test_alert_states_survive_a_round_trip() -> None:
    states = AlertStates(AlertSettings(enter_windows=1))
    states.advance([result(Severity.CRITICAL)])
    restored = AlertStates(AlertSettings(enter_windows=1), states.to_json())
    assert restored.state("amount", "all") == Severity.CRITICAL
    assert restored.advance([result(Severity.CRITICAL)]) == []


def test_metric_labels_stay_bounded() -> None:
    metrics = Metrics(CollectorRegistry(), "m", top_k=2)
    groups = [Group("language", v) for v in ("en", "de", "fr", "es")]
    ranks = {g.name: i for i, g in enumerate(groups)}
    results = [FeatureResult("amount", g, "numeric", 100, {"psi": 0.1 * i}, Severity.OK, ())
               for i, g in enumerate(groups)]
    gaps = [CoverageGap("region", f"r{i}", 0.1, 10) for i in range(5)]
    metrics.record_window(results, gaps, 1000, DriftSettings(), ranks)
    segments = {s.labels["segment"] for m in metrics.registry.collect() for s in m.samples
                if s.name == "synthdrift_feature_drift_severity"}
    assert segments == {"language=en", "language=de", "language=other"}
    values = {s.labels["value"]: s.value for m in metrics.registry.collect() for s in m.samples
              if s.name == "synthdrift_coverage_gap_share"}
    assert set(values) == {"r0", "r1", "other"} and values["other"] == pytest.approx(0.3)


def test_the_window_after_the_gauges_were_forgotten_shows_again() -> None:
    metrics = Metrics(CollectorRegistry(), "m", top_k=2)

    def psi_series() -> list[float]:
        return [s.value for m in metrics.registry.collect() for s in m.samples
                if s.name == "synthdrift_feature_drift_score" and s.labels["statistic"] == "psi"]

    for psi in (0.3, 0.5):
        window = [FeatureResult("amount", Group(), "numeric", 100, {"psi": psi}, Severity.WARNING, ())]
        metrics.record_window(window, [], 1000, DriftSettings(), {})
        assert psi_series() == [psi]
        metrics.forget_windows()  # the merger moved away, then came back
        assert psi_series() == []


def test_the_worker_does_not_load_pyarrow() -> None:
    # PyArrow reads training tables only; in a worker it would cost ~30 MB of RSS for nothing.
    script = "import sys, monitor.commands.cli, monitor.stream.app; print(sorted(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert "'monitor.stream.app'" in loaded and "pyarrow" not in loaded


def test_coverage_gap_series_stay_flat_over_ever_new_values() -> None:
    metrics = Metrics(CollectorRegistry(), "m", top_k=3)
    counts = []
    for window in range(100):
        gaps = [CoverageGap("region", f"w{window}-v{i}", 0.05 - i / 1000, 10) for i in range(8)]
        metrics.record_window([], gaps, 1000, DriftSettings(), {})
        counts.append(sum(1 for m in metrics.registry.collect() for s in m.samples
                          if s.name == "synthdrift_coverage_gap_share"))
    assert set(counts) == {4}  # the top 3 and `other`, whatever came before


def test_join_buffers_are_bounded_by_memory() -> None:
    join = JoinBuffer(ttl=1000, max_pending=1_000_000, max_bytes=4 * 100_000)
    for i in range(10_000):
        join.request(f"r{i}", {"amount": 12.5}, {"language": "en", "region": "eu"}, None, now=0)
    assert 0 < join.pending_bytes() <= 100_000 and join.pending() < 250
    assert join.outcomes[("request", "expired")] == 10_000 - join.pending()


def test_bin_share_series_of_a_wide_categorical_stay_bounded(tmp_path: Path) -> None:
    # Over 100 categories get bins of their own; the series show the first 50, the rest in `(other)`.
    rng = np.random.default_rng(3)
    values = np.array([f"c{i}" for i in range(120)])[rng.integers(0, 120, 6000)]
    spec = Spec(model="wide", features={"code": "categorical"})
    profile = build_profile(tmp_path, spec, {"code": values})
    bins = profile.channels[0].bins
    assert isinstance(bins, CategoryBins) and len(bins.categories) > 100  # 99% of the rows
    metrics = Metrics(CollectorRegistry(), "wide", top_k=3)
    live_sketch = profile.sketcher().sketch({"code": to_labels(values[:1000])})
    metrics.record_bins(profile.channels, profile.groups, profile.reference, live_sketch, {})
    samples = [s for f in metrics.registry.collect() if f.name == "synthdrift_feature_bin_share" for s in f.samples]
    live = {s.labels["bin"]: s.value for s in samples if s.labels["source"] == "live"}
    assert len(live) == 52 and {"(other)", "(unseen)"} <= live.keys()
    assert abs(sum(live.values()) - 1.0) < 1e-9


def test_labelled_joined_records_count_in_their_slices_as_check_counts_the_same_events(profile_path: Path) -> None:
    """The worker sketches a request, then its joined feedback (features carried by the join);
    `check` reads the same event as one row. Slice outcomes and gap outcomes come out the same."""
    profile = Profile.load(profile_path)
    events = list(simulate(profile, 800, [Drift("language", "new", 0.2, "pt")], 0, seed=5, start_time=0))
    events = [{**e, "request_id": f"r{i}"} for i, e in enumerate(events)]
    whole = profile.sketcher().sketch(to_columns(events, profile.spec))  # as `check` reads them
    sketcher, join = profile.sketcher(), JoinBuffer(ttl=60, max_pending=10_000)
    streamed = sketcher.empty()
    for event in events:  # as the worker reads them: the request, its prediction, its label
        parts = dict(split(event))
        sketcher.update(streamed, to_columns([parts["requests"]], profile.spec), stream="requests")
        join.request(event["request_id"], event["features"], event["segments"], None, now=0)
        join.prediction(event["request_id"], parts["predictions"]["prediction"], now=0)
        for record in join.feedback(event["request_id"], parts["feedback"]["label"], None, now=0):
            sketcher.update(streamed, to_columns([record], profile.spec), events=False, stream="feedback")
    axes = len(sketcher.axes)
    assert whole.slice_outcomes.sum() == 800 * (axes + axes * (axes - 1) // 2)  # every row in every cell it is in
    assert np.array_equal(whole.slice_outcomes, streamed.slice_outcomes)
    assert {k: v.tolist() for k, v in whole.gap_outcomes["language"].items()} == \
        {k: v.tolist() for k, v in streamed.gap_outcomes["language"].items()}
    assert whole.gap_outcomes["language"]["pt"].sum() > 100  # a language nobody generated, with its accuracy


async def test_a_partitions_next_chunk_waits_for_its_last_complete_one_to_be_acknowledged(
        small_profile: Profile, tmp_path: Path) -> None:
    # Were chunk 1 delivered while chunk 0's last version failed, the merger would take partition 0
    # to have moved past chunk 0's windows: it would close them without those events.
    from aiokafka import TopicPartition
    from aiokafka.errors import UnknownError

    deliveries: list[asyncio.Future[None]] = []

    class Sketches:
        async def send(self, key: bytes, value: bytes) -> asyncio.Future[None]:
            deliveries.append(asyncio.get_running_loop().create_future())
            return deliveries[-1]

    async def never(lost: list[TopicPartition]) -> None:
        raise AssertionError("no log is lost here")

    config = WorkerConfig(profile=tmp_path / "profile.json", topics=Topics(requests="requests"))
    reader = TrafficReader(config, small_profile.spec, Analyzer(small_profile),
                           Metrics(CollectorRegistry(), "small", 10), "app", Sketches(), never)  # type: ignore[arg-type]
    tp, size = TopicPartition("requests", 0), config.window.chunk_events

    async def held_back(chunk: Chunk) -> asyncio.Task[Any]:
        """Sends a version of `chunk`; asserts it waits for the last complete chunk's delivery."""
        chunk.advance(chunk.first_offset + 10)
        sending = asyncio.ensure_future(reader._send(tp, chunk))
        sent = len(deliveries)
        await asyncio.sleep(0.01)
        assert not sending.done() and len(deliveries) == sent
        return sending

    first = reader.chunks.start("requests", 0, 0)
    first.advance(size)
    await reader._finish(tp, first)
    second = reader.chunks.start("requests", 0, size)
    sending = await held_back(second)
    deliveries[0].set_result(None)
    await sending
    assert len(deliveries) == 2
    second.advance(2 * size)
    await reader._finish(tp, second)
    sending = await held_back(reader.chunks.start("requests", 0, 2 * size))
    deliveries[2].set_exception(UnknownError())
    with pytest.raises(UnknownError):  # the reader's loop then reads again from the last commit
        await sending
    assert len(deliveries) == 3
