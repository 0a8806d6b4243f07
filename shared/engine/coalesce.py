"""Turn batching: work submitted by many tasks in one event-loop turn goes out as one request.

A router drains hundreds of rooms concurrently and each room's batch makes the same few calls
(publish its frames, mark its actions done, append history). Sent one by one, every call pays
a round trip's worth of Python (command packing, a socket write, a future, a timeout). A
:class:`TurnBatcher` collects what is submitted until the loop comes back to it (``call_soon``,
or after ``linger`` seconds) and flushes it with one call; each submitter awaits that shared
flush and sees its result or its exception. A flush may return one result per item (a
pipeline's replies); each submitter gets the slice for its own items. An idle system pays
nothing: a lone submission is flushed on the very next turn.

``submit`` queues at call time and returns the awaitable, so a caller can queue several
submissions before awaiting any. A *serial* batcher runs one flush at a time, in submission
order, which makes that order the order of execution (a Redis pipeline on one connection).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_Batch = tuple[list[T], "asyncio.Future[list[Any] | None]"]


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
        self._pending: _Batch[T] | None = None
        self._sealed: deque[_Batch[T]] = deque()  # serial: full batches waiting for their turn
        self._running: set[asyncio.Task[None]] = set()

    def submit(self, items: list[T]) -> Awaitable[list[Any]]:
        """Queue ``items`` now (kept together and in order); await the result to wait until their
        flush is done and get its results for these items, if it returns any."""
        if self._pending is None:
            loop = asyncio.get_running_loop()
            self._pending = ([], loop.create_future())
            if self._serial and (self._running or self._sealed):
                pass  # fired when the flushes ahead of it end
            elif self._linger > 0:
                loop.call_later(self._linger, self._fire)
            else:
                loop.call_soon(self._fire)
        batch, done = self._pending
        start = len(batch)
        batch.extend(items)
        if len(batch) >= self._max_items:
            if self._serial and (self._running or self._sealed):
                # Full while earlier flushes run: keep its place in line, start the next batch.
                self._sealed.append(self._pending)
                self._pending = None
            else:
                self._fire()
        return _results(done, start, len(items))

    def _fire(self) -> None:
        if self._pending is None:
            return  # already flushed early (max_items); this was its timer
        if self._serial and (self._running or self._sealed):
            return  # a timer of a batch flushed early; this one's turn comes in _flushed
        batch, done = self._pending
        self._pending = None
        self._start(batch, done)

    def _start(self, batch: list[T], done: asyncio.Future[list[Any] | None]) -> None:
        task = asyncio.get_running_loop().create_task(self._run(batch, done))
        self._running.add(task)
        task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not self._serial or self._running:
            return
        if self._sealed:
            self._start(*self._sealed.popleft())
        elif self._pending is not None:
            self._fire()  # what queued up behind the flush that just ended

    async def _run(self, batch: list[T], done: asyncio.Future[list[Any] | None]) -> None:
        try:
            results = await self._flush(batch)
        except BaseException as exc:  # every submitter must learn of the failure
            if not done.done():
                done.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            if not done.done():
                done.set_result(results)


async def _results(done: asyncio.Future[list[Any] | None], start: int, count: int) -> list[Any]:
    # Shielded: the future is shared by every submitter of the batch, and awaiting it bare would
    # let one cancelled submitter (a closed connection's handler) cancel it for all the others.
    results = await asyncio.shield(done)
    return [] if results is None else results[start : start + count]
