"""`synthdrift gap`: the standing reality gap of a synthetic reference, explained, on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import build_profile
from realdata import copula, loans

from monitor.commands.cli import main
from monitor.core.columns import take
from monitor.core.gap import reality_gap, render_text


@pytest.fixture(scope="module")
def loan_rows() -> tuple:
    spec, columns = loans()
    rng = np.random.default_rng(1)
    rows = rng.permutation(len(columns["state"]))
    return spec, take(columns, rows[:2000]), take(columns, rows[2000:]), copula(take(columns, rows[:2000]), spec,
                                                                                 2000, rng)


def test_the_gap_names_the_smoothed_spike_the_cut_tail_and_the_missing_states(loan_rows: tuple,
                                                                              tmp_path: Path) -> None:
    spec, _, real, synthetic = loan_rows
    gaps = {(g.result.feature, g.result.group.name): g
            for g in reality_gap(build_profile(tmp_path, spec, synthetic), real)}
    fees = gaps[("paid_late_fees", "all")]
    assert str(fees.result.severity) == "critical"
    assert fees.real and fees.synthetic and fees.real.top_value == "0" and fees.real.top_share > 0.9
    assert fees.synthetic.top_share < 0.6  # the spike at zero, smoothed away
    assert fees.real.quantiles and fees.synthetic.quantiles
    assert fees.real.quantiles["max"] > fees.synthetic.quantiles["max"]  # the tail, cut to the sample
    assert fees.bins and fees.bins[0]["psi"] >= fees.bins[-1]["psi"] > 0
    state = gaps[("state", "all")]
    assert state.unseen and all(share > 0 for _, share in state.unseen)
    assert {value for value, _ in state.unseen}.isdisjoint(set(synthetic["state"]))
    assert "paid_late_fees [all] critical" in render_text(list(gaps.values()))


def test_real_rows_against_a_profile_of_real_rows_show_no_gap(loan_rows: tuple, tmp_path: Path) -> None:
    spec, reference, real, _ = loan_rows
    gaps = reality_gap(build_profile(tmp_path, spec, reference), real)
    assert all(not g.result.severity for g in gaps)
    assert render_text(gaps) == "no feature differs from the synthetic profile"


def test_the_gap_command_writes_json(loan_rows: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec, _, real, synthetic = loan_rows
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({"model": spec.model, "features": spec.features,
                                                        "segments": list(spec.segments)}))
    pq.write_table(pa.table(synthetic), tmp_path / "synthetic.parquet")
    pq.write_table(pa.table(real), tmp_path / "real.parquet")
    assert main(["profile", "build", "--spec", str(tmp_path / "spec.yaml"), "--input",
                 str(tmp_path / "synthetic.parquet"), "--output", str(tmp_path / "profile.json")]) == 0
    capsys.readouterr()
    assert main(["gap", "--profile", str(tmp_path / "profile.json"), "--input", str(tmp_path / "real.parquet"),
                 "--format", "json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report and all(entry["severity"] != "ok" for entry in report)
    assert report[0]["severity"] == "critical" and report[0]["real"]["rows"] > 0
    assert {"feature", "segment", "bins", "synthetic", "real", "unseen"} <= report[0].keys()
