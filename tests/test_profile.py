"""Profiles: the same from CSV, JSONL and Parquet; saved and loaded intact; bad ones fail in one line."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitor.commands import example
from monitor.core.channels import VocabularyBins
from monitor.core.profile import Profile, ProfileError, ProfileSettings, build, summary
from monitor.core.spec import Spec, SpecError
from monitor.core.tables import TableError

SPEC = Spec.from_dict(example.SPEC)


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("tables")
    rows = list(example.training_rows(3000))
    for row in rows[::50]:
        row["amount"] = None  # some missing values
    paths = {fmt: directory / f"train.{fmt}" for fmt in ("csv", "jsonl", "parquet")}
    with paths["csv"].open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    paths["jsonl"].write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), paths["parquet"])
    return paths


@pytest.fixture(scope="module")
def profiles(tables: dict[str, Path]) -> dict[str, Profile]:
    settings = ProfileSettings(min_segment_rows=100)
    return {fmt: build(SPEC, path, settings) for fmt, path in tables.items()}


def test_csv_jsonl_and_parquet_give_the_same_profile(profiles: dict[str, Profile]) -> None:
    csv_profile = profiles["csv"]
    for other in (profiles["jsonl"], profiles["parquet"]):
        assert other.groups == csv_profile.groups
        assert [c.name for c in other.channels] == [c.name for c in csv_profile.channels]
        for name, counts in csv_profile.reference.counts.items():
            np.testing.assert_array_equal(other.reference.counts[name], counts, err_msg=name)
        assert other.meta["evaluation"] == csv_profile.meta["evaluation"]


def test_the_profile_holds_what_the_synthetic_data_had(profiles: dict[str, Profile]) -> None:
    profile = profiles["parquet"]
    assert profile.meta["input"]["rows"] == 3000
    assert profile.meta["provenance_mix"] == {"synthetic": 1.0}
    assert profile.meta["evaluation"]["accuracy"] == pytest.approx(0.93, abs=0.02)
    assert {g.name for g in profile.groups} >= {"all", "language=en", "language=de", "region=eu"}
    assert set(profile.segment_values["language"]) == {"en", "de", "fr"}
    amount = profile.reference.counts["amount"][0]
    assert amount[-1] == 60  # one row in fifty had no amount
    channels = {c.name: c for c in profile.channels}
    assert set(channels) >= {"body.length", "body.oov", "channel", "prediction.label", "prediction.score",
                             "performance"}
    vocabulary = channels["body.oov"].bins
    assert isinstance(vocabulary, VocabularyBins)
    assert {"refund", "parcel", "rechnung", "colis"} <= vocabulary.vocabulary
    assert len(profile.sample["amount"]) == 3000  # the sample is all rows when the table is small


def test_a_saved_profile_loads_back_the_same(profiles: dict[str, Profile], tmp_path: Path) -> None:
    profile = profiles["csv"]
    path = tmp_path / "profile.json"
    path.write_bytes(profile.to_json())
    loaded = Profile.load(path)
    assert loaded.spec == profile.spec and loaded.groups == profile.groups and loaded.meta == profile.meta
    for name, counts in profile.reference.counts.items():
        np.testing.assert_array_equal(loaded.reference.counts[name], counts)
    assert loaded.to_json() == profile.to_json()
    assert "support-router" in summary(loaded) and "body.oov" in summary(loaded)


def test_the_reservoir_sample_is_bounded(tables: dict[str, Path]) -> None:
    profile = build(SPEC, tables["parquet"], ProfileSettings(sample_size=500))
    assert all(len(values) == 500 for values in profile.sample.values())


@pytest.mark.parametrize("content, message", [
    (b"{", "cannot read the profile"),
    (b'{"format": "something-else"}', "not a synthdrift profile"),
])
def test_a_bad_profile_fails_in_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "profile.json"
    path.write_bytes(content)
    with pytest.raises(ProfileError, match=message) as error:
        Profile.load(path)
    assert "\n" not in str(error.value)


def test_an_old_profile_version_asks_for_a_rebuild(profiles: dict[str, Profile], tmp_path: Path) -> None:
    data = orjson.loads(profiles["csv"].to_json())
    data["version"] = 99
    path = tmp_path / "profile.json"
    path.write_bytes(orjson.dumps(data))
    with pytest.raises(ProfileError, match="rebuild"):
        Profile.load(path)


def test_slice_counts_of_another_layout_ask_for_a_rebuild(profiles: dict[str, Profile], tmp_path: Path) -> None:
    data = orjson.loads(profiles["csv"].to_json())
    data["reference"]["slices"] = data["reference"]["slices"][:-5]  # as a version with fewer cells wrote them
    path = tmp_path / "profile.json"
    path.write_bytes(orjson.dumps(data))
    with pytest.raises(ProfileError, match="slice counts, expected .*rebuild the profile") as error:
        Profile.load(path)
    assert "\n" not in str(error.value)


def test_a_missing_column_is_named(tables: dict[str, Path]) -> None:
    spec = Spec(model="m", features={"amount": "numeric", "colour": "categorical"})
    for path in tables.values():
        with pytest.raises(TableError, match="missing column 'colour'"):
            build(spec, path)


def test_an_empty_table_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(ProfileError, match="no rows"):
        build(Spec(model="m", features={"x": "numeric"}), path)


@pytest.mark.parametrize("spec, message", [
    ({"features": {"x": "numeric"}}, "model"),
    ({"model": "m", "features": {"x": "float"}}, "spec.features.x: \"float\" is not one of"),
    ({"model": "m", "features": {"x": "numeric"}, "segments": ["x"]}, "both a feature and a segment"),
])
def test_a_bad_spec_fails_in_one_line(spec: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message) as error:
        Spec.from_dict(spec)
    assert "\n" not in str(error.value)


def test_quoted_text_that_spans_lines_is_read_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    rows = [{"amount": i, "body": f"line one\nline two of ticket {i}" if i % 3 == 0 else f"ticket {i}"}
            for i in range(300)]
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["amount", "body"])
        writer.writeheader()
        writer.writerows(rows)
    profile = build(Spec(model="m", features={"amount": "numeric", "body": "text"}), path)
    assert profile.meta["input"]["rows"] == 300
    assert "two" in {c.name: c for c in profile.channels}["body.oov"].bins.vocabulary  # type: ignore[union-attr]
