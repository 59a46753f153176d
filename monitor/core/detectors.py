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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from river import drift
from river.base import DriftDetector

from monitor.channels import CategoryBins, Channel, NumericBins

DetectorKind = Literal["adwin", "page_hinkley", "kswin"]
DEFAULT_PARAMETERS: dict[str, dict[str, Any]] = {
    "adwin": {"delta": 0.001, "clock": 1},
    "page_hinkley": {"min_instances": 30, "delta": 0.5, "threshold": 25.0},
    "kswin": {"alpha": 0.0001, "window_size": 100, "stat_size": 30, "seed": 0},
}


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    kind: DetectorKind = "adwin"
    block: int = 100  # events per detector update
    parameters: dict[str, Any] = field(default_factory=dict)

    def create(self) -> DriftDetector:
        factory = {"adwin": drift.ADWIN, "page_hinkley": drift.PageHinkley, "kswin": drift.KSWIN}[self.kind]
        return factory(**{**DEFAULT_PARAMETERS[self.kind], **self.parameters})  # type: ignore[abstract]


@dataclass(frozen=True, slots=True)
class Detection:
    feature: str
    channel: str
    signal: str
    detector: str
    offset: int


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
    """A location and a spread detector for every distribution channel, on all traffic.

    `update` takes per channel the bin counts of consecutive blocks and the stream offset of each
    block's last event; it returns the detections, each at the offset of its block's end.
    """

    SIGNALS = ("location", "spread")

    def __init__(self, channels: tuple[Channel, ...], references: dict[str, np.ndarray],
                 settings: DetectorSettings, warmup: dict[str, np.ndarray]) -> None:
        self.settings = settings
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
        self._detectors = {(c.name, s): settings.create() for c in self.channels for s in self.SIGNALS}
        self.update(warmup, {name: np.full(len(counts), -1) for name, counts in warmup.items()})

    def update(self, blocks: dict[str, np.ndarray], ends: dict[str, np.ndarray]) -> list[Detection]:
        found = []
        for channel in self.channels:
            counts = blocks.get(channel.name)
            if counts is None:  # a batch from a stream that does not carry this channel
                continue
            present = counts[:, :-1].sum(axis=1)
            means = (counts @ self._weights[channel.name]) / np.maximum(present, 1)[:, None]
            # In units of the synthetic null's standard error: River's bounds then act on the
            # signal-to-noise ratio, and a block of n events and one of 2n weigh alike.
            null_mean, null_sd = self._null[channel.name]
            means = (means - null_mean) / null_sd * np.sqrt(np.maximum(present, 1))[:, None]
            for signal, column in zip(self.SIGNALS, means.T):
                detector = self._detectors[(channel.name, signal)]
                for value, n, end in zip(column.tolist(), present.tolist(), ends[channel.name].tolist()):
                    if not n:
                        continue
                    detector.update(value)
                    if detector.drift_detected and end >= 0:
                        found.append(Detection(channel.feature, channel.name, signal, self.settings.kind, end))
        return sorted(found, key=lambda d: d.offset)
