"""The worker's log: one line per kind of repeated warning, not one per attempt.

While a broker is away, aiokafka and Faust log every failed attempt: a 10-second outage wrote
~1,400 ERROR and WARNING lines, a minute of it ~12,000. The filter lets one record of a kind
(its logger and message template) through every `seconds`; the next one it lets through says
how many it held back.
"""

from __future__ import annotations

import logging
import math
import time

import faust.worker

HOLD_SECONDS = 30.0
MAX_KINDS = 1000  # a template that embeds its arguments makes a kind per line: start afresh


class Repeats(logging.Filter):
    """Holds back warnings and errors of a kind seen less than `seconds` ago.

    >>> repeats = Repeats(seconds=30)
    >>> record = lambda: logging.LogRecord("aiokafka", logging.ERROR, "", 0, "node %s down", ("1",), None)
    >>> [repeats.filter(record()) for _ in range(3)]
    [True, False, False]
    """

    def __init__(self, seconds: float = HOLD_SECONDS) -> None:
        super().__init__()
        self.seconds = seconds
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # kind -> when let through, held since

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        kind, now = (record.name, str(record.msg)), time.monotonic()
        last, held = self._seen.get(kind, (-math.inf, 0))
        if now - last < self.seconds:
            self._seen[kind] = (last, held + 1)
            return False
        if len(self._seen) >= MAX_KINDS:
            self._seen.clear()
        self._seen[kind] = (now, 0)
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {now - last:.0f} s]"
        return True


class Worker(faust.worker.Worker):
    """Faust's worker, with repeated warnings held back at every handler of the root logger."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        for handler in logger.handlers:
            handler.addFilter(Repeats())
