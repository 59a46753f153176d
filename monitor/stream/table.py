"""The merger's table: a Faust table whose changelog writes can be awaited.

Faust commits a stream's offsets after flushing its producer, but that flush gives up after 0.1 s
without a message leaving the buffer (a busy event loop: a reader sketching a batch), and it does
not wait for a message the buffer already handed on. A worker killed just after such a commit
restarts past partials whose state never reached the changelog: a chunk's final version, which
no reader sends again, would be gone. The agent awaits `written()` before it takes the next
message (Faust acks a message then, and only acked offsets are committed).
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.types import FutureMessage


class WrittenTable(faust.Table):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unwritten: list[FutureMessage] = []

    def send_changelog(self, *args: Any, **kwargs: Any) -> FutureMessage:
        sending = super().send_changelog(*args, **kwargs)
        self._unwritten.append(sending)
        return sending

    async def written(self) -> None:
        """Returns once every change made so far is in the changelog, or failed to get there (the
        broker away: Faust logs each failure, and this process's table stays right)."""
        unwritten, self._unwritten = self._unwritten, []
        if unwritten:
            await asyncio.gather(*unwritten, return_exceptions=True)
