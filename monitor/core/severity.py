"""Severities: a statistic is a warning or critical only if it is both large and significant.

Large: at or above an effect-size threshold (PSI 0.1 / 0.25 by default), so that big windows do
not alarm on differences too small to matter. Significant: above the calibrated bound that a
window of the same size drawn from the synthetic data stays under (see `calibration`), so that
small windows and small segments do not alarm on noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Severity(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Threshold:
    warning: float
    critical: float


def judge(value: float, threshold: Threshold, bound: float) -> Severity:
    """The severity of one statistic.

    >>> str(judge(0.3, Threshold(0.1, 0.25), bound=0.02)), str(judge(0.3, Threshold(0.1, 0.25), bound=0.5))
    ('critical', 'ok')
    """
    if value <= bound:
        return _OK
    if value >= threshold.critical:
        return _CRITICAL
    if value >= threshold.warning:
        return _WARNING
    return _OK


_OK, _WARNING, _CRITICAL = Severity  # plain names: class attribute lookups on an Enum are slow
