"""Live events: every bad one gets a reason from the closed set; good ones become columns."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.core.events import EventParser, Invalid, Reason, to_columns
from monitor.core.spec import Spec

SPEC = Spec(model="router", features={"amount": "numeric", "channel": "categorical", "body": "text",
                                      "vip": "boolean"}, segments=("language",),
            prediction_label="predicted", prediction_score="confidence", label="true_label", provenance="source")
GOOD = {"request_id": "r1", "timestamp": "2026-11-24T10:00:00Z", "model": "router",
        "features": {"amount": 12.5, "channel": 3, "body": "Hello", "vip": True},
        "segments": {"language": "en"}, "provenance": "organic",
        "prediction": {"label": "billing", "score": 0.9}, "label": "billing"}


@pytest.fixture(scope="module")
def parser() -> EventParser:
    return EventParser(SPEC, max_bytes=2000)


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", Reason.NOT_JSON),
    (b"[1, 2]", Reason.SCHEMA_VIOLATION),
    (b'{"model": "router", "features": {"amount": NaN}}', Reason.NON_FINITE),
    (b'{"model": "router", "features": {"amount": 1e999}}', Reason.NON_FINITE),
    (b'{"model": "router", "features": {"amount": "12"}}', Reason.SCHEMA_VIOLATION),
    (b'{"model": "router", "features": {"body": 7}}', Reason.SCHEMA_VIOLATION),
    (b'{"model": "router"}', Reason.SCHEMA_VIOLATION),
    (b'{"model": "other", "features": {}}', Reason.UNKNOWN_MODEL),
    (b'{"model": "router", "features": {"body": "' + b"x" * 3000 + b'"}}', Reason.OVERSIZED),
    (None, Reason.EMPTY),  # a tombstone
    (b"", Reason.EMPTY),
    (b'{"model": "router", "features": {"amount": NaN', Reason.NOT_JSON),  # cut short: not JSON at all
    (b'{"model": "r\xff"}', Reason.NOT_JSON),
])
def test_invalid_events_get_their_reason(parser: EventParser, raw: bytes | None, reason: Reason) -> None:
    result = parser.parse(raw)
    assert isinstance(result, Invalid) and result.reason == reason and result.detail
    events, invalid = parser.parse_many([orjson.dumps(GOOD), raw, orjson.dumps(GOOD)])
    assert len(events) == 2 and list(invalid) == [1] and invalid[1].reason == reason


def test_json_nested_too_deep_is_not_json_whatever_it_holds() -> None:
    # Deeper than orjson takes, and deeper than Python's parser can recurse to tell NaN apart.
    result = EventParser(SPEC).parse(b"[" * 1500 + b"NaN" + b"]" * 1499)
    assert isinstance(result, Invalid) and result.reason == Reason.NOT_JSON


def test_a_schema_violation_says_which_field(parser: EventParser) -> None:
    result = parser.parse(b'{"model": "router", "features": {"amount": "12"}}')
    assert isinstance(result, Invalid) and "amount" in result.detail


def test_valid_events_become_columns_named_as_in_the_training_table(parser: EventParser) -> None:
    event = parser.parse(orjson.dumps(GOOD))
    assert not isinstance(event, Invalid)
    sparse = {"model": "router", "features": {}}
    columns = to_columns([event, sparse], SPEC)
    assert columns["amount"][0] == 12.5 and np.isnan(columns["amount"][1])
    assert columns["channel"].tolist() == ["3", None]
    assert columns["vip"].tolist() == ["true", None]
    assert columns["language"].tolist() == ["en", None]
    assert columns["predicted"].tolist() == ["billing", None]
    assert columns["confidence"][0] == 0.9
    assert columns["true_label"].tolist() == ["billing", None]
    assert columns["source"].tolist() == ["organic", None]


def test_a_batch_parses_as_its_events_do_one_by_one(parser: EventParser) -> None:
    good = orjson.dumps(GOOD)
    bad = [b"{not json", b'{"model": "router", "features": {"amount": NaN}}', b'{"model": "other", "features": {}}',
           b'{"model": "router", "features": {"amount": "12"}}', b'{"model": "router", "features": {"body": "'
           + b"x" * 3000 + b'"}}']
    assert parser.parse_many([good, good]) == ([GOOD, GOOD], {})
    for raw in bad:
        events, invalid = parser.parse_many([good, raw, good])
        assert events == [GOOD, GOOD] and list(invalid) == [1] and invalid[1] == parser.parse(raw)


@pytest.mark.parametrize("second", [
    {"x": 2.0, "y": None, "z": 4},  # every numeric feature present: one pass over the events
    {"x": 2.0, "z": True},  # one missing: gathered feature by feature
])
def test_numeric_columns_are_the_same_whichever_way_they_are_gathered(second: dict) -> None:
    spec = Spec(model="m", features={"x": "numeric", "y": "numeric", "z": "numeric"})
    columns = to_columns([{"features": {"x": 1.5, "y": -1, "z": 0.0}}, {"features": second}], spec)
    expected = {name: [1.5, -1.0, 0.0][i] for i, name in enumerate("xyz")}
    for name in "xyz":
        assert columns[name].dtype == np.float64 and columns[name].flags.c_contiguous
        assert columns[name][0] == expected[name]
        assert np.array_equal(columns[name][1:], [float(second[name]) if second.get(name) is not None else np.nan],
                              equal_nan=True)


def scalars() -> st.SearchStrategy[Any]:
    # Integers past 64 bits too (orjson reads them as floats), strings with escapes and astral letters.
    return st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=5),
                     st.floats(allow_nan=False, allow_infinity=False))


KIND_VALUES = {"numeric": st.one_of(st.none(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False,
                                                                                      allow_infinity=False)),
               "categorical": scalars(), "boolean": st.one_of(st.none(), st.booleans(), st.text(max_size=3),
                                                              st.integers(-(2**70), 2**70)),
               "text": st.one_of(st.none(), st.text(max_size=5))}


def events(spec: Spec) -> st.SearchStrategy[dict[str, Any]]:
    """Valid requests, and valid requests with one part (or one feature) replaced by anything."""
    anything = st.one_of(scalars(), st.lists(st.integers(), max_size=2),
                         st.dictionaries(st.text(max_size=2), scalars()))
    features = st.fixed_dictionaries({}, optional={name: KIND_VALUES[kind] for name, kind in spec.features.items()})
    valid = st.fixed_dictionaries({"model": st.just(spec.model), "features": features}, optional={
        "request_id": st.text(min_size=1, max_size=3),
        "timestamp": st.one_of(st.text(max_size=3), st.floats(allow_nan=False, allow_infinity=False)),
        "segments": st.dictionaries(st.sampled_from(["language", "region"]), scalars()),
        "provenance": st.one_of(st.sampled_from(["organic", "synthetic"]), st.none()),
        "prediction": st.fixed_dictionaries({}, optional={
            "label": scalars(), "score": st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
            "scores": st.dictionaries(st.text(max_size=2), st.floats(allow_nan=False, allow_infinity=False))}),
        "label": scalars(),
        "undeclared": anything,
    })
    parts = ["model", "features", "request_id", "timestamp", "segments", "segments.language", "provenance",
             "prediction", "prediction.label", "prediction.score", "prediction.scores", "prediction.scores.a",
             "label", *(f"features.{name}" for name in spec.features)]

    def spoilt(event: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        return st.tuples(st.sampled_from(parts), st.one_of(anything, st.just(""), st.just("other"))).map(
            lambda change: replaced(event, change[0].split("."), change[1]))

    return st.one_of(valid, valid.flatmap(spoilt))


def replaced(tree: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    """A copy of `tree` with the value at `path` replaced (what is on the way made a dict)."""
    inner = tree.get(path[0])
    return {**tree, path[0]: replaced(inner if isinstance(inner, dict) else {}, path[1:], value) if path[1:] else value}


def assert_same_columns(first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> None:
    assert first.keys() == second.keys()
    for name, values in first.items():
        assert values.dtype == second[name].dtype, name
        if values.dtype == np.float64:
            assert np.array_equal(values, second[name], equal_nan=True), name
        else:
            assert values.tolist() == second[name].tolist(), name


# Numeric features apart, as the typed struct gathers them first.
ODD_NAMES = Spec(model="router", features={"unit price": "numeric", "class": "categorical", "amount": "numeric",
                                           "vip?": "boolean", "body.text": "text"}, segments=("language",),
                 prediction_label="predicted", prediction_score="confidence", label="true_label")


@pytest.mark.parametrize("spec", [SPEC, ODD_NAMES], ids=["spec", "odd names"])
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_one_pass_decoder_gives_the_schemas_verdicts_and_the_same_columns(spec: Spec, data: st.DataObject) -> None:
    event = data.draw(events(spec))
    raw = json.dumps(event, ensure_ascii=data.draw(st.booleans())).encode()
    good = json.dumps({**GOOD, "features": {}}).encode()
    typed, plain = EventParser(spec, structs=True), EventParser(spec)
    for raws in ([raw], [good, raw, good]):
        fast, slow = typed.parse_many(raws), plain.parse_many(raws)
        assert fast[1] == slow[1]  # the same events invalid, with the same reasons
        if fast[0]:
            assert_same_columns(to_columns(fast[0], spec), to_columns(slow[0], spec))


def test_valid_requests_take_the_one_pass_decoder() -> None:
    events, invalid = EventParser(SPEC, structs=True).parse_many([orjson.dumps(GOOD)] * 2)
    assert not invalid and all(isinstance(event, msgspec.Struct) for event in events)
    assert_same_columns(to_columns(events, SPEC), to_columns([GOOD, GOOD], SPEC))
