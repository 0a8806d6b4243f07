"""In-process :class:`~shared.engine.logstream.LogStream`: a bounded deque with one active consumer.

Unacked deliveries go back to the front of the queue when their consumer stops, as a broker
requeues them when a consumer goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from shared import metrics
from shared.engine.actions import Ack
from shared.engine.logstream import LogConsumer, LogHandler, LogStream


class _LogQueue:
    def __init__(self) -> None:
        self.deliveries: deque[tuple[str, bytes]] = deque()
        self.active = asyncio.Lock()  # one active consumer, like single-active-consumer
        self._changed = asyncio.Condition()

    async def put(self, room_id: str, data: bytes) -> None:
        self.deliveries.append((room_id, data))
        async with self._changed:
            self._changed.notify_all()

    async def get(self) -> tuple[str, bytes]:
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self.deliveries))
            return self.deliveries.popleft()

    def put_back(self, deliveries: list[tuple[str, bytes]]) -> None:
        """Return ``deliveries`` (in their order) to the front of the queue."""
        self.deliveries.extendleft(reversed(deliveries))


class MemoryLogConsumer(LogConsumer):
    """Takes the queue while it holds ``active``."""

    def __init__(self, queue: _LogQueue, handler: LogHandler, prefetch: int) -> None:
        self._queue = queue
        self._handler = handler
        self._window = asyncio.Semaphore(prefetch)
        self._unacked: dict[int, tuple[str, bytes]] = {}
        self._next = 0
        self._task = asyncio.create_task(self._run(), name="memory-logs")

    def _acker(self, tag: int) -> Ack:
        async def ack() -> None:
            if self._unacked.pop(tag, None) is not None:
                self._window.release()

        return ack

    async def _run(self) -> None:
        async with self._queue.active:
            while True:
                await self._window.acquire()
                room_id, data = await self._queue.get()
                tag, self._next = self._next, self._next + 1
                self._unacked[tag] = (room_id, data)
                await self._handler(room_id, data, self._acker(tag))

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._queue.put_back(list(self._unacked.values()))
        self._unacked.clear()


class MemoryLogStream(LogStream):
    def __init__(self, max_deliveries: int = 100_000) -> None:
        self.max_deliveries = max_deliveries  # the in-memory twin of the broker's byte bound
        self._queue = _LogQueue()

    async def publish(self, room_id: str, data: bytes) -> None:
        if len(self._queue.deliveries) >= self.max_deliveries:  # never wait for a slow sink: drop, counted
            metrics.LOG_DELIVERIES_DROPPED.inc()
            return
        await self._queue.put(room_id, data)

    async def consume(self, handler: LogHandler, prefetch: int = 1000) -> LogConsumer:
        return MemoryLogConsumer(self._queue, handler, prefetch)
