"""Language as a derived segment: synthetic text in English (and a little German), live traffic that
turns 15% German, Spanish and Russian (Debian's fortunes), events with no language field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml
from textdata import fortunes

from monitor.commands.cli import main
from monitor.core import columns as columns_module
from monitor.core.events import to_columns
from monitor.core.spec import Spec, SpecError

SPEC = {"model": "notes", "features": {"text": "text"}, "languages": ["text"], "label": "label",
        "prediction": {"label": "predicted"}}
GERMAN_IN_TRAINING = 400  # enough for a segment of its own (200 rows)
WINDOW = 2000


def labelled(texts: list[str], accuracy: float, rng: np.random.Generator) -> list[dict[str, Any]]:
    right = rng.random(len(texts)) < accuracy
    return [{"text": t, "label": "a", "predicted": "a" if ok else "b"} for t, ok in zip(texts, right.tolist(),
                                                                                        strict=True)]


def cyrillic(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum("\u0400" <= c <= "\u04ff" for c in letters) / max(len(letters), 1)


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("language")
    rng = np.random.default_rng(2)
    english, german = fortunes(6, "en"), fortunes(6, "de")
    spanish = fortunes(6, "es")
    russian = [t for t in fortunes(6, "ru") if cyrillic(t) > 0.5]  # the Russian files quote English too
    for texts in (english, german, spanish, russian):
        rng.shuffle(texts)
    train = labelled(english[:4000], 0.9, rng) + labelled(german[:GERMAN_IN_TRAINING], 0.9, rng)
    (directory / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    (directory / "train.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in train))
    assert main(["profile", "build", "--spec", str(directory / "spec.yaml"), "--input", str(directory / "train.jsonl"),
                 "--output", str(directory / "profile.json")]) == 0
    # Live: one window of English, then two where 5% each are German, Spanish and Russian, on
    # which the model is worse (0.6 against 0.9).
    live = labelled(english[4000:6000], 0.9, rng)
    later = labelled(english[6000:9400], 0.9, rng)
    for texts in (german[GERMAN_IN_TRAINING:GERMAN_IN_TRAINING + 200], spanish[:200], russian[:200]):
        later += labelled(texts, 0.6, rng)
    live += [later[i] for i in rng.permutation(len(later))]
    events = [{"model": "notes", "features": {"text": r["text"]}, "prediction": {"label": r["predicted"]},
               "label": r["label"]} for r in live]
    (directory / "live.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return {"directory": directory, "profile": orjson.loads((directory / "profile.json").read_bytes())}


def report(directory: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["check", "--profile", str(directory / "profile.json"), "--input", str(directory / "live.jsonl"),
                 "--window", str(WINDOW), "--format", "json"]) == 0
    return orjson.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_the_profile_records_the_synthetic_language_mix(checked: dict[str, Any]) -> None:
    languages = checked["profile"]["segment_values"]["text.language"]
    assert languages["en"] > 3800 and GERMAN_IN_TRAINING * 0.9 < languages["de"] <= GERMAN_IN_TRAINING
    groups = {(g["field"], g["value"]) for g in checked["profile"]["groups"]}
    assert ("text.language", "en") in groups and ("text.language", "de") in groups


def test_new_languages_are_named_with_their_shares_within_a_window(checked: dict[str, Any],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    windows = report(checked["directory"], capsys)["windows"]
    assert len(windows) == 3

    def shares(window: dict[str, Any]) -> dict[str, float]:
        return {g["value"]: g["live_share"] for g in window["coverage_gaps"] if g["field"] == "text.language"}

    assert sum(shares(windows[0]).values()) < 0.01  # English traffic: nothing new
    for window in windows[1:]:
        found = shares(window)
        assert found.get("es", 0) == pytest.approx(0.05, abs=0.02)
        assert found.get("ru", 0) == pytest.approx(0.05, abs=0.02)
        assert "de" not in found  # German was in the synthetic data: a segment, not a gap


def test_accuracy_falls_in_the_german_segment(checked: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    by_segment = {tuple(r["segment"].items())[0]: r["stats"]
                  for r in report(checked["directory"], capsys)["accuracy"]["by_segment"]}
    german, english = by_segment[("text.language", "de")], by_segment[("text.language", "en")]
    assert german["accuracy_high"] < german["reference_accuracy"]  # below the synthetic evaluation
    assert english["accuracy_low"] < english["reference_accuracy"] < english["accuracy_high"]


def test_new_languages_get_their_own_accuracy_and_language_slices_are_weak(
        checked: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    windows = report(checked["directory"], capsys)["windows"]
    assert not any(s["weak"] for s in windows[0]["slices"])  # English traffic, as accurate as in synthesis
    for window in windows[1:]:
        gaps = {g["value"]: g for g in window["coverage_gaps"] if g["field"] == "text.language"}
        for language in ("es", "ru"):  # never in the synthetic data: accuracy of their own, below 0.9
            assert gaps[language]["labelled"] == gaps[language]["events"] >= 60
            assert gaps[language]["accuracy_high"] < 0.85 and gaps[language]["accuracy"] == pytest.approx(0.6, abs=0.15)
        weak = {s["slice"]: s for s in window["slices"] if s["weak"]}
        assert set(weak) == {"text.language=de", "text.language=(other)"}, list(weak)
        assert weak["text.language=(other)"]["reference_accuracy"] == pytest.approx(0.9, abs=0.02)
        assert weak["text.language=de"]["accuracy"] < 0.75


def test_a_joined_record_keeps_its_requests_language_and_only_the_rest_are_identified(
        monkeypatch: pytest.MonkeyPatch) -> None:
    spec = Spec.from_dict(SPEC)
    identified: list[int] = []
    identify = columns_module.identify

    def counted(texts: np.ndarray) -> np.ndarray:
        identified.append(len(texts))
        return identify(texts)

    monkeypatch.setattr(columns_module, "identify", counted)
    german, english = fortunes(6, "de")[0], fortunes(6, "en")[0]
    records = [{"features": {"text": german}, "segments": {"text.language": "de"}},  # joined: identified before
               {"features": {"text": english}, "segments": {}}]
    assert to_columns(records, spec)["text.language"].tolist() == ["de", "en"]
    assert identified == [1]  # the English text alone
    assert to_columns([records[1]], spec)["text.language"].tolist() == ["en"] and identified == [1, 1]


def test_only_text_features_have_a_language() -> None:
    with pytest.raises(SpecError, match="languages: 'amount' is not a text feature"):
        Spec.from_dict({"model": "m", "features": {"amount": "numeric"}, "languages": ["amount"]})
