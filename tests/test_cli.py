"""The command line as a user runs it: exit codes, formats, and one clear line on bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest
import yaml

from monitor.commands import example
from monitor.commands.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("cli")
    paths = example.write(directory, rows=3000, events=4000, drift_at=2000)
    assert main(["profile", "build", "--spec", str(paths["spec"]), "--input", str(paths["train"]),
                 "--output", str(directory / "profile.json"), "--min-segment-rows", "100"]) == 0
    paths["profile"] = directory / "profile.json"
    stable = directory / "stable.jsonl"
    stable.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in example.live_events(2000, drift_at=10**9)))
    paths["stable"] = stable
    return paths


def test_spec_infer_guesses_kinds_and_roles(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spec", "infer", "--input", str(files["train"]), "--model", "router"]) == 0
    spec = yaml.safe_load(capsys.readouterr().out)
    assert spec["model"] == "router"
    assert spec["features"]["amount"] == "numeric" and spec["features"]["body"] == "text"
    assert spec["features"]["channel"] == "categorical" and spec["features"]["returning_customer"] == "boolean"
    assert spec["segments"] == ["language", "region"] and spec["provenance"] == "source"
    assert spec["prediction"] == {"label": "predicted", "score": "confidence"} and spec["label"] == "true_label"


def test_profile_show(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "show", str(files["profile"])]) == 0
    out = capsys.readouterr().out
    assert "support-router@" in out and "evaluation  accuracy" in out and "body.length" in out


def test_check_json_reports_windows_and_fails_on_request(files: dict[str, Path],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    args = ["check", "--profile", str(files["profile"]), "--input", str(files["live"]), "--window", "1000"]
    assert main([*args, "--format", "json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["events"] == 4000 and len(report["windows"]) == 4
    assert report["windows"][0]["worst"] == "ok" and report["windows"][3]["worst"] == "critical"
    assert ("language", "es") in {(g["field"], g["value"]) for g in report["coverage_gaps"]}
    assert main([*args, "--fail-on", "warning"]) == 1
    assert "worst severity: critical" in capsys.readouterr().out


def test_check_passes_the_gate_on_synthetic_like_traffic(files: dict[str, Path],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--profile", str(files["profile"]), "--input", str(files["stable"]),
                 "--window", "1000", "--fail-on", "warning"]) == 0
    assert "worst severity: ok" in capsys.readouterr().out


def test_malformed_lines_are_counted_reported_and_skipped(files: dict[str, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    lines = files["stable"].read_bytes().splitlines()[:300]
    lines[10] = b"{oops"
    lines[20] = b'{"model": "support-router", "features": {"amount": "lots"}}'
    lines.insert(30, b"")  # blank lines are not events
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert main(["check", "--profile", str(files["profile"]), "--input", str(path), "--format", "json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["events"] == 298 and report["invalid"] == 2  # together, the 300 non-blank lines
    assert [(i["line"], i["reason"]) for i in report["invalid_lines"]] == [(11, "not_json"),
                                                                            (21, "schema_violation")]
    assert report["windows"][0]["events"] == 298


@pytest.mark.parametrize("args", [
    ["check", "--profile", "nowhere.json", "--input", "x.jsonl"],
    ["profile", "show", "nowhere.json"],
    ["profile", "build", "--spec", "nowhere.yaml", "--input", "x.csv", "--output", "p.json"],
])
def test_bad_input_files_exit_2_with_one_line(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("synthdrift: error: ") and err.count("\n") == 1


def test_a_missing_events_file_exits_2(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--profile", str(files["profile"]), "--input", "nowhere.jsonl"]) == 2
    assert "nowhere.jsonl" in capsys.readouterr().err


def test_a_config_changes_thresholds(files: dict[str, Path], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "monitor.yaml"
    lax = {"warning": 100.0, "critical": 200.0}
    config.write_text(yaml.safe_dump({"drift": {"thresholds": dict.fromkeys(
        ["psi", "out_of_range_share", "unseen_share", "oov_excess", "missing_rate_change", "accuracy_gap"], lax)}}))
    assert main(["check", "--profile", str(files["profile"]), "--input", str(files["live"]), "--config",
                 str(config), "--fail-on", "warning"]) == 0
    assert "worst severity: ok" in capsys.readouterr().out


@pytest.mark.parametrize("drift, message", [
    ({"thresholds": {"psi": {"warning": 0.3, "critical": 0.2}}}, "above critical"),
    ({"thresholds": {"pis": {"warning": 0.1, "critical": 0.2}}}, "'pis' was unexpected"),
    ({"false_alarm_rate": 2}, "false_alarm_rate"),
    ({"detector": {"kind": "adwin", "parameters": {"delat": 0.1}}}, "delat"),
])
def test_a_bad_config_exits_2_with_one_line(files: dict[str, Path], tmp_path: Path, drift: dict, message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(yaml.safe_dump({"drift": drift}))
    assert main(["check", "--profile", str(files["profile"]), "--input", str(files["live"]),
                 "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_worker_that_cannot_reach_kafka_stops_with_one_line(files: dict[str, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(yaml.safe_dump({"profile": str(files["profile"]), "kafka": {"bootstrap_servers": "127.0.0.1:1"}}))
    assert main(["worker", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("synthdrift: error: cannot reach Kafka at 127.0.0.1:1") and err.count("\n") == 1


def test_an_organic_baseline_judges_drift_and_the_profile_the_gap(files: dict[str, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    baseline, organic = tmp_path / "baseline.json", tmp_path / "organic.csv"
    # Only organic rows make a baseline: the synthetic training table has none.
    assert main(["profile", "baseline", "--profile", str(files["profile"]), "--input", str(files["train"]),
                 "--output", str(baseline)]) == 2
    assert "no organic rows" in capsys.readouterr().err
    with files["train"].open(newline="") as source, organic.open("w", newline="") as target:
        rows = list(csv.DictReader(source))
        writer = csv.DictWriter(target, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "source": "organic" if i % 2 else "synthetic"} for i, row in enumerate(rows))
    assert main(["profile", "baseline", "--profile", str(files["profile"]), "--input", str(organic),
                 "--output", str(baseline)]) == 0
    assert "organic baseline" in capsys.readouterr().out
    assert main(["check", "--profile", str(files["profile"]), "--baseline", str(baseline), "--input",
                 str(files["stable"]), "--format", "json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["reference"] == "organic" and report["worst"] == "ok" and report["reality_gap"] == []
    assert orjson.loads(baseline.read_bytes())["input"]["rows"] == 1500  # the organic half of the table
    # A profile of its own is no baseline: one line says what to do.
    assert main(["check", "--profile", str(files["profile"]), "--baseline", str(files["profile"]), "--input",
                 str(files["stable"])]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "not an organic baseline" in error and "synthdrift profile baseline" in error


def test_check_reports_live_accuracy_with_its_interval_beside_the_synthetic_one(
        files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--profile", str(files["profile"]), "--input", str(files["stable"]), "--format",
                 "json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    performance = [r["stats"] for w in report["windows"] for r in w["results"]
                   if r["feature"] == "performance" and r["segment"] is None]
    assert performance
    for stats in performance:
        assert 0 < stats["accuracy_low"] <= stats["accuracy"] <= stats["accuracy_high"] <= 1
        assert stats["accuracy_high"] - stats["accuracy_low"] < 0.1  # 2,000 labels: a narrow interval
        assert 0 < stats["reference_accuracy"] <= 1


def test_check_reports_accuracy_by_provenance_and_segment_against_the_synthetic_evaluation(
        files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    events = [orjson.loads(line) for line in files["live"].read_bytes().splitlines()]
    labelled = {p: sum(1 for e in events if e["provenance"] == p and "label" in e) for p in ("organic", "synthetic")}
    assert main(["check", "--profile", str(files["profile"]), "--input", str(files["live"]), "--format",
                 "json"]) == 0
    accuracy = orjson.loads(capsys.readouterr().out)["accuracy"]
    by_provenance = {s["provenance"]: s for s in accuracy["by_provenance"]}
    assert {p: s["labelled"] for p, s in by_provenance.items()} == labelled
    # Reality moved in the second half; the synthetic probes did not.
    assert by_provenance["organic"]["below_synthetic"] and not by_provenance["synthetic"]["below_synthetic"]
    for row in by_provenance.values():
        assert row["accuracy_low"] <= row["accuracy"] <= row["accuracy_high"]
    segments = {tuple(r["segment"].items())[0] for r in accuracy["by_segment"]}
    assert ("language", "en") in segments and ("region", "eu") in segments
    assert sum(r["stats"]["labelled"] for r in accuracy["by_segment"] if "region" in r["segment"]) \
        <= labelled["organic"]


def test_only_organic_events_judge_drift(files: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Probes far from reality (amounts x100) are counted, and judge nothing."""
    events = [orjson.loads(line) for line in files["stable"].read_bytes().splitlines()]
    for event in events:
        if event["provenance"] != "organic":
            event["features"]["amount"] *= 100
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    assert main(["check", "--profile", str(files["profile"]), "--input", str(mixed), "--format", "json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["worst"] == "ok" and report["events"] == len(events)
    probes = sum(1 for e in events if e["provenance"] != "organic")
    assert 100 < probes < len(events) / 4
    for event in events:
        event["provenance"] = "organic"
    mixed.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    assert main(["check", "--profile", str(files["profile"]), "--input", str(mixed), "--fail-on", "critical"]) == 1
