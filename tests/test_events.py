"""Live events: every bad one gets a reason from the closed set; good ones become columns."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

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
