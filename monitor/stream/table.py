"""The merger's table: a Faust table whose changelog writes can be awaited, and all recovered.

- Faust commits a stream's offsets after flushing its producer, but that flush gives up after
  0.1 s without a message leaving the buffer (a busy event loop: a reader sketching a batch), and
  does not wait for a message the buffer already handed on. A worker killed just after such a
  commit would restart past partials whose state never reached the changelog: a chunk's final
  version, which no reader sends again, would be gone. So the agent awaits `written()` before it
  takes the next message (Faust acks a message then, and only acked offsets are committed).
- Faust's recovery reads a changelog up to the end offset the broker reports. The embedded broker
  (tansu) reports its newest batch's *first* offset + 1: the rest of that batch, the state that one
  message left (a window's closing, its chunks dropped), would never be recovered. So `written()`
  ends every message's changes with a mark of its own, sent alone once they are acknowledged:
  the newest batch is then that mark, and what a recovery misses is at most the mark.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.types import FutureMessage

MARK = "changelog-end"  # the key of the mark (the merger's keys are `chunk:`, `done:`, `closed`, `late`)


class WrittenTable(faust.Table):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unwritten: list[FutureMessage] = []

    def send_changelog(self, *args: Any, **kwargs: Any) -> FutureMessage:
        sending = super().send_changelog(*args, **kwargs)
        self._unwritten.append(sending)
        return sending

    async def written(self) -> None:
        """Returns once every change made so far, then the mark after them, is in the changelog or
        failed to get there (the broker away: Faust logs each failure, and this process's table
        stays right). Call it from the agent, as the changes were made: the mark goes to the
        partition of the message being processed, as they did."""
        if not self._unwritten:
            return
        await self._settle()
        self[MARK] = True
        await self._settle()

    async def _settle(self) -> None:
        unwritten, self._unwritten = self._unwritten, []
        await asyncio.gather(*unwritten, return_exceptions=True)
