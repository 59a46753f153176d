"""A worker under hostile input: arbitrary bytes, keys, headers and sizes next to real traffic.

Hypothesis draws the hostile records; one worker, started once, takes every example. After each,
the worker is alive, every record is counted once (valid or dead-lettered, with its reason), and
the closed windows hold exactly the valid events.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from streaming import Stack, wait_for

from monitor.commands.replay import simulate
from monitor.core.events import Reason
from monitor.core.profile import Profile
from monitor.stream.reader import DEAD_LETTER_BYTES

VALID_PER_EXAMPLE = 400
REASONS = {str(reason) for reason in Reason}
START = 1_750_000_000.0
BIG = 1_048_000  # just under 1 MiB: with our headers, a dead letter as it came would be over the broker's limit

hostile = st.tuples(
    st.one_of(
        st.none(),  # a tombstone
        st.just(b""),
        st.binary(min_size=1, max_size=300),
        st.binary(min_size=1, max_size=40).map(lambda b: b"{" + b),  # JSON cut short
        st.builds(lambda n: b'{"model": "x", "features": {}}' + b" " * n, st.integers(0, 50)),  # not our model
        st.just(b'{"model": "support-router", "features": {"amount": NaN}}'),
        st.just(b"x" * BIG),
    ),
    st.one_of(st.none(), st.binary(max_size=64)),  # keys: none or binary
    st.lists(st.tuples(st.text(max_size=12), st.binary(max_size=32)), max_size=3),  # junk headers
).map(lambda r: (r[0], b"k" if r[0] is None and r[1] is None else r[1], r[2]))  # Kafka needs a key or a value


@pytest.fixture(scope="module")
def deployment(bootstrap: str, profile_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(bootstrap, profile_path, tmp_path_factory.mktemp("hostile"))
    stack.start_worker()
    stack.produced = {"valid": 0, "hostile": 0}  # type: ignore[attr-defined]
    yield stack
    stack.stop()


examples = itertools.count()


@settings(max_examples=4, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
@given(records=st.lists(hostile, min_size=20, max_size=45))
def test_no_record_stops_the_worker_and_every_one_is_counted_once(deployment: Stack, profile_path: Path,
                                                                   records: list[Any]) -> None:
    stack, produced = deployment, deployment.produced  # type: ignore[attr-defined]
    example = next(examples)
    events = simulate(Profile.load(profile_path), VALID_PER_EXAMPLE, [], 0, seed=example,
                      start_time=START + 10 * example)
    stack.produce(orjson.dumps(e) for e in events)
    stack.send((partition, value, key, [(name, bytes(data)) for name, data in headers])
               for partition, (value, key, headers) in zip(itertools.cycle(range(4)), records, strict=False))
    produced["valid"] += VALID_PER_EXAMPLE
    produced["hostile"] += len(records)

    def counted() -> bool:
        valid = stack.metric("synthdrift_events_total", stream="requests", status="valid")
        invalid = stack.metric("synthdrift_events_total", stream="requests", status="invalid")
        return valid + invalid >= produced["valid"] + produced["hostile"]

    wait_for(counted, 60, "every record counted")
    time.sleep(1)  # anything counted twice would show by now
    assert all(process.poll() is None for process, _ in stack.workers), "the worker exited"
    assert stack.metric("synthdrift_events_total", stream="requests", status="valid") == produced["valid"]
    assert stack.metric("synthdrift_events_total", stream="requests", status="invalid") == produced["hostile"]
    windows = wait_for(lambda: (w := stack.windows()) and sum(x["events"] for x in w.values()) >= produced["valid"]
                       and w, 60, "windows holding every valid event")
    assert sum(w["events"] for w in windows.values()) == produced["valid"]
    assert stack.metric("synthdrift_events_total", stream="requests", status="late") == 0
    letters = stack.read_topic(stack.topics.dlq, produced["hostile"], timeout=60)
    assert len(letters) == produced["hostile"]
    for letter in letters:
        headers = dict(letter.headers)
        assert headers["synthdrift.reason"].decode() in REASONS
        assert headers["synthdrift.source.topic"].decode() == stack.topics.requests
        assert len(letter.value or b"") + len(letter.key or b"") <= DEAD_LETTER_BYTES
        assert ("synthdrift.truncated" in headers) == (letter.value is not None and len(letter.value) >= BIG // 2)
