"""Turn batching: work submitted by many tasks in one event-loop turn goes out as one request.

A router drains hundreds of rooms concurrently and each room's batch makes the same few calls
(publish its frames, mark its actions done, append history). Sent one by one, every call pays
a round trip's worth of Python (command packing, a socket write, a future, a timeout). A
:class:`TurnBatcher` collects what is submitted until the loop comes back to it (``call_soon``,
or after ``linger`` seconds) and flushes it with one call; each submitter awaits that shared
flush and sees its result or its exception. A flush may return one result per item (a
pipeline's replies); each submitter gets the slice for its own items. An idle system pays
nothing: a lone submission is flushed on the very next turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class TurnBatcher(Generic[T]):
    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[list[Any] | None]],
        *,
        linger: float = 0.0,
        max_items: int = 1000,
        serial: bool = False,
    ) -> None:
        self._flush = flush
        self._linger = linger
        self._max_items = max_items
        self._serial = serial
        self._pending: tuple[list[T], asyncio.Future[list[Any] | None]] | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, items: list[T]) -> list[Any]:
        """Queue ``items`` (kept together and in order) and wait until their flush is done; the
        flush's results for these items, if it returns any."""
        if self._pending is None:
            loop = asyncio.get_running_loop()
            self._pending = ([], loop.create_future())
            if self._serial and self._running:
                pass  # fired when the running flush ends
            elif self._linger > 0:
                loop.call_later(self._linger, self._fire)
            else:
                loop.call_soon(self._fire)
        batch, done = self._pending
        start = len(batch)
        batch.extend(items)
        if len(batch) >= self._max_items:
            self._fire()
        results = await done
        return [] if results is None else results[start : start + len(items)]

    def _fire(self) -> None:
        if self._pending is None:
            return  # already flushed early (max_items); this was its timer
        batch, done = self._pending
        self._pending = None
        task = asyncio.get_running_loop().create_task(self._run(batch, done))
        self._running.add(task)
        task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._serial and not self._running and self._pending is not None:
            self._fire()  # what queued up behind the flush that just ended

    async def _run(self, batch: list[T], done: asyncio.Future[list[Any] | None]) -> None:
        try:
            results = await self._flush(batch)
        except BaseException as exc:  # every submitter must learn of the failure
            done.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            done.set_result(results)
