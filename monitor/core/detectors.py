"""Online drift detectors (River), seeded by the synthetic profile.

Each value goes through the probability-integral transform of its channel's synthetic
distribution, u = F_synthetic(x) taken at the middle of x's bin: while nothing drifts, u keeps the
synthetic mean (0.5) and spread. Two River detectors per channel watch the block means of u (a
change in location) and of |2u - 1| (a change in spread or in the tails), standardised by their
synthetic null so that they read as z-scores. Values outside the synthetic range and unseen
categories land at u = 0 or u = 1.

A block is a few dozen events, and its two means are linear in the block's bin counts, so
detectors read count vectors: a block sketched by several workers and merged gives the very same
input as one worker would. The per-event Python loop River needs runs once per block, not once
per event and feature. Before the first live block, each detector is fed blocks of the profile's
reservoir sample, so the window it compares against starts out as the synthetic data.

River tests significance only: on real data it fired on changes too small to matter. A firing is
reported once the last `RECENT_BLOCKS` blocks, judged as a window is (an effect-size threshold
and a calibrated bound, see `severity`), reach a warning, within `CONFIRM_BLOCKS` blocks; else it
is dropped. A third signal, `novel`, needs no River detector: the share of values outside the
synthetic range or in categories it never had, over the last `NOVEL_BLOCKS` blocks, judged the
same way (a new category taking 8% of traffic shows within ~300 events, where the location
detector took ~2,500); it fires as it rises to a warning, and again only after it fell back.
"""

from __future__ import annotations

import base64
import random
from collections import deque
from typing import Any, Callable

import numpy as np
from river import __version__ as river_version
from river import drift
from river.base import DriftDetector

from monitor.core.channels import CategoryBins, Channel, NumericBins
from monitor.core.severity import Severity
from monitor.core.types import Detection, DetectorSettings

DEFAULT_PARAMETERS: dict[str, dict[str, Any]] = {
    "adwin": {"delta": 0.001, "clock": 1},
    "page_hinkley": {"min_instances": 30, "delta": 0.5, "threshold": 25.0},
    "kswin": {"alpha": 0.0001, "window_size": 100, "stat_size": 30, "seed": 0},
}
STATE_FORMAT = "synthdrift-detectors"
STATE_VERSION = 2
RECENT_BLOCKS = 10  # judged to confirm a River firing
CONFIRM_BLOCKS = 10  # blocks after a firing in which the effect must show
NOVEL_BLOCKS = 3  # judged for the novel signal
NOVEL_STATISTICS = ("out_of_range_share", "unseen_share")
# (channel, all-traffic bin counts, statistics) -> the severity a window with those counts would get
Judge = Callable[[Channel, np.ndarray, tuple[str, ...]], Severity]


def create_detector(settings: DetectorSettings) -> DriftDetector:
    """A River detector of the settings' kind; bad parameters raise TypeError or ValueError here."""
    factory = {"adwin": drift.ADWIN, "page_hinkley": drift.PageHinkley, "kswin": drift.KSWIN}[settings.kind]
    return factory(**{**DEFAULT_PARAMETERS[settings.kind], **settings.parameters})  # type: ignore[abstract]


def pit_table(reference: np.ndarray) -> np.ndarray:
    """u for each bin: the synthetic CDF at the middle of the bin; NaN for the missing bin.

    >>> pit_table(np.array([0.5, 0.5, 0.0, 3.0])).tolist()
    [0.25, 0.75, 1.0, nan]
    """
    present = reference[:-1] / max(float(reference[:-1].sum()), 1e-300)
    before = np.cumsum(present) - present
    return np.append(before + present / 2, np.nan)


def block_counts(index: np.ndarray, size: int, block: int) -> np.ndarray:
    """Bin counts of consecutive blocks of `block` elements (the last one may be shorter).

    >>> block_counts(np.array([0, 1, 1, 2, 0]), size=3, block=2).tolist()
    [[1, 1, 0], [0, 1, 1], [1, 0, 0]]
    """
    blocks = -(-len(index) // block)
    flat = np.arange(len(index)) // block * size + index
    return np.bincount(flat, minlength=blocks * size).reshape(blocks, size)


def block_ends(offsets: np.ndarray, block: int) -> np.ndarray:
    """The offset of the last row of each block of `block` rows.

    >>> block_ends(np.array([10, 11, 12, 14, 15]), 2).tolist()
    [11, 14, 15]
    """
    return offsets[np.minimum(np.arange(block, len(offsets) + block, block), len(offsets)) - 1]


class DriftDetectors:
    """A location and a spread detector for every distribution channel, on all traffic, and the
    novel share of those that can have values the synthetic data never had.

    `update` takes per channel the bin counts of consecutive blocks and the stream offset of each
    block's last event; it returns the detections, each at the offset of its block's end.
    """

    SIGNALS = ("location", "spread")

    def __init__(self, channels: tuple[Channel, ...], references: dict[str, np.ndarray],
                 settings: DetectorSettings, judge: Judge, floor: Callable[[Channel, str], float],
                 warmup: dict[str, np.ndarray]) -> None:
        """`judge` gives the severity counts would get as a window; `floor`, a statistic's lowest
        threshold for a channel."""
        self.settings = settings
        self.judge = judge
        self.channels = [c for c in channels if isinstance(c.bins, (NumericBins, CategoryBins))]
        self._weights: dict[str, np.ndarray] = {}
        self._null: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for channel in self.channels:
            u = pit_table(references[channel.name])[:-1]
            signals = np.column_stack((u, np.abs(2 * u - 1)))
            # Block means are counts @ weights / present counts; the missing bin has weight 0.
            self._weights[channel.name] = np.vstack((signals, np.zeros(2)))
            present = references[channel.name][:-1] / max(float(references[channel.name][:-1].sum()), 1e-300)
            mean = present @ signals
            self._null[channel.name] = (mean, np.sqrt(np.maximum(present @ signals**2 - mean**2, 1e-12)))
        self._novel = {c.name: tuple(s for s in c.judged if s in NOVEL_STATISTICS) for c in self.channels}
        self._novel_bins = {c.name: np.flatnonzero(c.bins.novel).tolist() for c in self.channels}
        self._novel_floor = {c.name: min((floor(c, s) for s in self._novel[c.name]), default=0.0)
                             for c in self.channels}
        self._keys = {c.name: tuple(f"{c.name}|{s}" for s in self.SIGNALS) for c in self.channels}
        self._detectors = {key: create_detector(settings) for keys in self._keys.values() for key in keys}
        self._recent = {c.name: deque[list[int]](maxlen=RECENT_BLOCKS) for c in self.channels}
        self._pending: dict[str, int] = {}  # River firings not yet confirmed -> blocks left to confirm them
        self._novel_on: set[str] = set()  # channels whose novel share is at a warning or above
        self.update(warmup, {name: np.full(len(counts), -1) for name, counts in warmup.items()})

    def update(self, blocks: dict[str, np.ndarray], ends: dict[str, np.ndarray]) -> list[Detection]:
        found = []
        for channel in self.channels:
            counts = blocks.get(channel.name)
            if counts is None:  # a batch from a stream that does not carry this channel
                continue
            present = counts[:, :-1].sum(axis=1)
            used = present > 0  # an empty block (all missing) moves no detector
            counts, present, block_ends = counts[used], present[used], ends[channel.name][used]
            # By einsum's own loop, not BLAS, whose order of sums (so last bits) changes with the
            # number of blocks: a block's signals must not depend on how the stream was batched.
            sums = np.einsum("bk,ks->bs", counts, self._weights[channel.name])
            means = sums / np.maximum(present, 1)[:, None]
            # In units of the synthetic null's standard error: River's bounds then act on the
            # signal-to-noise ratio, and a block of n events and one of 2n weigh alike.
            null_mean, null_sd = self._null[channel.name]
            means = (means - null_mean) / null_sd * np.sqrt(np.maximum(present, 1))[:, None]
            found += self._update_channel(channel, counts, means, block_ends, self._novel_shares(channel, counts))
        return sorted(found, key=lambda d: d.offset)

    def _update_channel(self, channel: Channel, counts: np.ndarray, signals: np.ndarray, ends: np.ndarray,
                        shares: np.ndarray) -> list[Detection]:
        """A channel's blocks through its detectors; a negative end marks a warm-up block."""
        keys = self._keys[channel.name]
        fired = [_fired(self._detectors[key], values) for key, values in zip(keys, signals.T.tolist(), strict=True)]
        live = ends >= 0
        novel = bool(self._novel[channel.name])
        if not any(key in self._pending for key in keys) and not any(live[i] for hits in fired for i in hits) \
                and not (novel and (shares[live] >= self._novel_floor[channel.name]).any()):
            # Nothing to confirm, no novel share to judge (the usual block): only the recent blocks move.
            self._recent[channel.name].extend(counts[-RECENT_BLOCKS:].tolist())
            if novel and live.any():
                self._novel_on.discard(channel.name)
            return []
        found = []
        rows = zip(counts.tolist(), ends.tolist(), shares.tolist(), strict=True)
        for i, (block, end, share) in enumerate(rows):
            found += self._confirm(channel, block, [i in hits for hits in fired], end, share)
        return found

    def _confirm(self, channel: Channel, block: list[int], fired: list[bool], end: int,
                 novel_share: float) -> list[Detection]:
        """After one block, the firings its effect confirms, and the novel share if it turned on."""
        self._recent[channel.name].append(block)
        found = []
        effect: Severity | None = None  # of the recent blocks: judged once a block, if a firing waits
        for signal, key, detected in zip(self.SIGNALS, self._keys[channel.name], fired, strict=True):
            if detected and end >= 0:
                self._pending[key] = CONFIRM_BLOCKS
            if key in self._pending:
                if effect is None:
                    effect = self._effect(channel, RECENT_BLOCKS, channel.judged)
                if effect >= Severity.WARNING:
                    del self._pending[key]
                    found.append(Detection(channel.feature, channel.name, signal, self.settings.kind, end))
                else:
                    self._pending[key] -= 1
                    if not self._pending[key]:
                        del self._pending[key]
        if self._novel[channel.name] and end >= 0:
            novel = novel_share >= self._novel_floor[channel.name] and \
                self._effect(channel, NOVEL_BLOCKS, self._novel[channel.name]) >= Severity.WARNING
            if novel and channel.name not in self._novel_on:
                found.append(Detection(channel.feature, channel.name, "novel", "novelty", end))
            (self._novel_on.add if novel else self._novel_on.discard)(channel.name)
        return found

    def _novel_shares(self, channel: Channel, counts: np.ndarray) -> np.ndarray:
        """Per block of `counts`, the novel share of it and the blocks before it, `NOVEL_BLOCKS` in
        all (the first ones reach back into the recent blocks): a block's share below every
        threshold spares judging it, which costs far more."""
        before = list(self._recent[channel.name])[-(NOVEL_BLOCKS - 1):]
        blocks = np.vstack((np.array(before, dtype=np.int64).reshape(len(before), counts.shape[1]), counts))
        novel = np.concatenate(([0], np.cumsum(blocks[:, self._novel_bins[channel.name]].sum(axis=1))))
        total = np.concatenate(([0], np.cumsum(blocks[:, :-1].sum(axis=1))))
        last = np.arange(len(before) + 1, len(blocks) + 1)  # each block of `counts`: its end in the running sums
        first = np.maximum(last - NOVEL_BLOCKS, 0)
        return (novel[last] - novel[first]) / np.maximum(total[last] - total[first], 1)

    def _effect(self, channel: Channel, blocks: int, statistics: tuple[str, ...]) -> Severity:
        """The severity the channel's last `blocks` blocks would get as a window."""
        recent = list(self._recent[channel.name])[-blocks:]
        return self.judge(channel, np.sum(recent, axis=0), statistics)

    def to_json(self) -> dict[str, Any]:
        """The detectors' state as data, never pickle (whoever can write the changelog topic must
        not run code in the worker), stamped with the River version whose internals it records."""
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "river": river_version,
                "kind": self.settings.kind, "parameters": self.settings.parameters,
                "detectors": {key: _encode(vars(detector)) for key, detector in self._detectors.items()},
                "recent": {name: list(blocks) for name, blocks in self._recent.items()},
                "pending": self._pending, "novel_on": sorted(self._novel_on)}

    def restore(self, data: Any) -> bool:
        """Takes the state `to_json` wrote. Returns False, changing nothing, for a state written by
        another River, state version or detector setting, or that is malformed: the caller then
        re-seeds the detectors from the profile, and says so."""
        stamp = (STATE_FORMAT, STATE_VERSION, river_version, self.settings.kind, self.settings.parameters)
        if not isinstance(data, dict) or tuple(data.get(k) for k in ("format", "version", "river", "kind",
                                                                    "parameters")) != stamp:
            return False
        states = data.get("detectors")
        if not isinstance(states, dict) or set(states) != set(self._detectors):
            return False
        restored = {}
        try:
            for key, state in states.items():
                restored[key] = _decode(create_detector(self.settings), state)
            recent = {name: deque((_blocks(b, len(self._weights[name])) for b in data["recent"][name]),
                                  maxlen=RECENT_BLOCKS) for name in self._recent}
            pending = {str(k): int(v) for k, v in data["pending"].items() if k in self._detectors}
            novel_on = {str(name) for name in data["novel_on"] if name in self._recent}
        except (TypeError, ValueError, KeyError, AttributeError):
            return False
        self._detectors, self._recent, self._pending, self._novel_on = restored, recent, pending, novel_on
        return True


# River has no serialisation of its own but pickle, so a detector's state is written here as JSON
# values: its attributes, recursively; the random generator's state; the Rust ADWIN window's own
# binary state. Reading it back goes by the attributes of a freshly made detector, so only data
# whose shape that detector already has is accepted.
def _encode(value: Any) -> Any:
    if isinstance(value, np.generic):  # before float: NumPy's float64 is one
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple, deque)):
        return [_encode(v) for v in value]
    if isinstance(value, random.Random):
        return _encode(value.getstate())
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items() if not callable(v)}
    if hasattr(value, "__dict__"):
        return _encode(vars(value))
    state = value.__getstate__()
    if isinstance(state, bytes):
        return base64.b64encode(state).decode()
    raise TypeError(f"cannot write the state of {type(value).__name__}")


def _decode(current: Any, data: Any) -> Any:
    if isinstance(current, random.Random):
        current.setstate(_tuples(data))
        return current
    if isinstance(current, deque):
        return deque(_primitives(data), maxlen=current.maxlen)
    if isinstance(current, np.generic):
        return type(current)(data)
    if isinstance(data, dict) and hasattr(current, "__dict__"):
        for name, value in data.items():
            setattr(current, name, _decode(getattr(current, name), value))
        return current
    if isinstance(data, str) and not isinstance(current, str) and not hasattr(current, "__dict__"):
        # a Rust object (ADWIN's window): its own binary state
        current.__setstate__(base64.b64decode(data, validate=True))
        return current
    if type(data) is not type(current) and not (isinstance(data, (int, float)) and isinstance(current, (int, float))):
        raise TypeError(f"expected {type(current).__name__}, got {type(data).__name__}")
    return data


def _blocks(data: Any, size: int) -> list[int]:
    if not isinstance(data, list) or len(data) != size or not all(isinstance(v, int) for v in data):
        raise TypeError(f"expected {size} bin counts")
    return data


def _tuples(data: Any) -> Any:
    return tuple(_tuples(v) for v in data) if isinstance(data, list) else data


def _primitives(data: Any) -> list[Any]:
    if not isinstance(data, list) or not all(isinstance(v, (int, float)) for v in data):
        raise TypeError("expected a list of numbers")
    return data


def _fired(detector: DriftDetector, values: list[float]) -> set[int]:
    """Feeds the values to a River detector, in order; where it fired."""
    fired = set()
    for i, value in enumerate(values):
        detector.update(value)
        if detector.drift_detected:
            fired.add(i)
    return fired
