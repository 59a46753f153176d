"""`synthdrift contamination` on a planted case (train and eval from one template generator, with
copies, near copies and copied spans planted; organic text from Debian's fortunes) and on a clean
split of real text."""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml
from textdata import fortunes, tickets

from monitor.commands.cli import main

SPEC = {"model": "tickets", "features": {"text": "text", "amount": "numeric", "channel": "categorical"},
        "segments": ["region"], "label": "label", "prediction": {"label": "predicted"}}
TRAIN, EVAL, ORGANIC = 5000, 1000, 1000
# The planted evaluation set: what each share of it is.
EXACT, NEAR, DIRTY, TEMPLATED = 100, 100, 100, 200  # the other 500 are real text


def rows(texts: list[str], rng: np.random.Generator, accuracy: float | list[float]) -> list[dict[str, Any]]:
    """Rows around these texts: an amount, a channel, a region, a label and a prediction right with
    probability `accuracy` (one per row, or one for all)."""
    right = rng.random(len(texts)) < np.broadcast_to(np.asarray(accuracy), len(texts))
    labels = rng.choice(["billing", "delivery", "account"], len(texts))
    wrong = {"billing": "delivery", "delivery": "account", "account": "billing"}
    return [{"text": t, "amount": round(float(rng.lognormal(3, 1)), 2), "channel": rng.choice(["email", "chat"]),
             "region": rng.choice(["eu", "us"]), "label": label, "predicted": label if ok else wrong[label]}
            for t, label, ok in zip(texts, labels, right.tolist(), strict=True)]


def write(path: Path, table: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    return path


def run(directory: Path, train: list[dict[str, Any]], evaluation: list[dict[str, Any]],
        organic: list[dict[str, Any]], *extra: str) -> tuple[int, dict[str, Any]]:
    """The command's exit code and JSON report (the fixtures are module-wide: no capsys)."""
    (directory / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with contextlib.redirect_stdout(out):
        code = main(["contamination", "--spec", str(directory / "spec.yaml"),
                     "--train", str(write(directory / "train.csv", train)),
                     "--eval", str(write(directory / "eval.csv", evaluation)),
                     "--organic", str(write(directory / "organic.csv", organic)), "--format", "json", *extra])
    out.flush()
    return code, orjson.loads(out.buffer.getvalue())  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rng = np.random.default_rng(3)
    real = fortunes()
    rng.shuffle(real)
    train = rows(tickets(TRAIN, rng), rng, 0.95)
    source = rng.choice(TRAIN, EXACT + NEAR + DIRTY, replace=False)
    copies = [dict(train[i]) for i in source]
    for row in copies[EXACT:EXACT + NEAR]:
        row["text"] += " thanks"  # a near twin: one word more
    for row, prefix in zip(copies[EXACT + NEAR:], real[:DIRTY], strict=True):
        row["text"] = prefix + " " + row["text"].split(" ", 1)[1]  # a copied span inside other text
    fresh = rows(tickets(TEMPLATED, rng), rng, 0.93)
    clean = rows(real[DIRTY:DIRTY + EVAL - len(copies) - TEMPLATED], rng, 0.8)
    for row in copies:
        row["predicted"] = row["label"] if rng.random() < 0.97 else "other"
    evaluation = copies + fresh + clean
    organic = rows(real[-ORGANIC:], rng, 0.75)
    code, report = run(tmp_path_factory.mktemp("planted"), train, evaluation, organic, "--fail-on", "critical")
    return {"code": code, "report": report}


def test_planted_copies_are_found_at_their_shares(planted: dict[str, Any]) -> None:
    report = planted["report"]
    assert report["eval"]["rows"] == EVAL and report["train"]["rows"] == TRAIN
    assert report["exact_duplicates"]["share"] == pytest.approx(EXACT / EVAL, abs=0.01)
    assert report["near_duplicates"]["share"] == pytest.approx((EXACT + NEAR) / EVAL, abs=0.02)
    assert report["dirty_ngrams"]["share"] == pytest.approx((EXACT + NEAR + DIRTY) / EVAL, abs=0.03)
    assert report["shared_templates"]["share"] == pytest.approx((EXACT + TEMPLATED) / EVAL, abs=0.03)
    example = report["near_duplicates"]["examples"][0]
    assert example["jaccard"] >= 0.7 and example["eval"] != example["train"]
    top = report["shared_templates"]["top"][0]
    assert "<num>" in top["skeleton"] and top["eval_rows"] >= 30 and top["train_rows"] >= 500
    dirty = report["dirty_ngrams"]
    assert dirty["accuracy_dirty"]["accuracy"] > dirty["accuracy_clean"]["accuracy"]


def test_planted_flattery_closeness_and_likeness(planted: dict[str, Any]) -> None:
    report = planted["report"]
    overall = next(r for r in report["flattery"] if r["segment"] is None)
    # Evaluation ~0.88 (copies 0.97, templates 0.93, real text 0.8) against organic 0.75.
    assert 0.08 < overall["index"] < 0.18 and overall["low"] > 0.04
    assert 0 < overall["explained_by_contamination"] < overall["index"]
    assert {tuple(r["segment"].items())[0] for r in report["flattery"] if r["segment"]} == {("region", "eu"),
                                                                                          ("region", "us")}
    close = report["closeness"]
    assert close["close_share"] > 0.2 and close["close_share_low"] > close["expected"]
    assert report["eval_likeness"]["auc"] > 0.7
    assert report["eval_likeness"]["features"][0]["feature"].startswith("text.")
    checks = {f["check"] for f in report["findings"] if f["severity"] == "critical"}
    assert {"exact_duplicates", "near_duplicates", "dirty_ngrams", "eval_flattery"} <= checks
    assert planted["code"] == 1 and report["worst"] == "critical"


def test_a_clean_split_of_real_text_finds_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    real = fortunes()
    rng.shuffle(real)
    train, evaluation = rows(real[:TRAIN], rng, 0.8), rows(real[TRAIN:TRAIN + EVAL], rng, 0.8)
    organic = rows(real[TRAIN + EVAL:TRAIN + EVAL + ORGANIC], rng, 0.8)
    code, report = run(tmp_path, train, evaluation, organic, "--fail-on", "warning")
    assert report["findings"] == [] and code == 0
    assert report["exact_duplicates"]["rows"] == 0 and report["near_duplicates"]["share"] < 0.01
    assert report["dirty_ngrams"]["share"] < 0.02 and report["shared_templates"]["share"] < 0.02
    assert abs(report["eval_likeness"]["auc"] - 0.5) < 0.07
    close = report["closeness"]  # eval rows as far from training rows as held-out training rows are
    assert abs(close["close_share"] - close["expected"]) < 0.05
