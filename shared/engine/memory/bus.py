"""In-process ``Bus`` for embedded mode (``parley dev``) and tests.

Same contracts as the RabbitMQ/Redis implementation, minus durability: nothing survives the
process, which is the point of embedded mode.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict, deque
from typing import Any

from shared import metrics
from shared.engine.bus import (
    Ack,
    ActionHandler,
    Bus,
    DataListener,
    LogConsumer,
    LogHandler,
    ReviewHandler,
    RoomListener,
    Settle,
    ShardConsumer,
    Subscription,
)
from shared.protocol.envelope import ActionEnvelope


class _MemoryLogConsumer(LogConsumer):
    """Takes the bus's log queue while it holds ``_log_active``; unacked deliveries go back to
    the front of the queue on ``stop``, as a broker requeues them when a consumer goes away."""

    def __init__(self, bus: MemoryBus, handler: LogHandler, prefetch: int) -> None:
        self._bus = bus
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
        bus = self._bus
        async with bus._log_active:
            while True:
                await self._window.acquire()
                async with bus._logs_changed:
                    await bus._logs_changed.wait_for(lambda: bool(bus._logs))
                    room_id, data = bus._logs.popleft()
                tag, self._next = self._next, self._next + 1
                self._unacked[tag] = (room_id, data)
                await self._handler(room_id, data, self._acker(tag))

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._bus._logs.extendleft(reversed(list(self._unacked.values())))
        self._unacked.clear()


class _MemoryShardConsumer(ShardConsumer):
    def __init__(self, task: asyncio.Task[None]) -> None:
        self._task = task

    async def stop(self, settle: Settle | None = None) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if settle is not None:
            await settle()


class _MemorySubscription(Subscription):
    def __init__(self, bus: MemoryBus, on_room: RoomListener | None) -> None:
        self._bus = bus
        self._on_room = on_room
        self.rooms: set[str] = set()
        self.listeners: list[tuple[str, Any]] = []

    async def add_room(self, room_id: str) -> None:
        if self._on_room is not None and room_id not in self.rooms:
            self.rooms.add(room_id)
            self._bus._room_listeners[room_id].append(self._on_room)

    async def remove_room(self, room_id: str) -> None:
        if room_id in self.rooms:
            self.rooms.discard(room_id)
            listeners = self._bus._room_listeners[room_id]
            listeners.remove(self._on_room)
            if not listeners:
                del self._bus._room_listeners[room_id]

    async def close(self) -> None:
        for room_id in list(self.rooms):
            await self.remove_room(room_id)
        for channel, listener in self.listeners:
            self._bus._channel_listeners[channel].remove(listener)
        self.listeners.clear()


async def _noop_ack() -> None:
    return None


class _MemoryReviewServer(ShardConsumer):
    def __init__(self, bus: MemoryBus, handler: ReviewHandler, concurrency: int) -> None:
        self._bus = bus
        self.handler = handler
        self.slots = asyncio.Semaphore(concurrency)

    async def serve(self, data: bytes) -> bytes | None:
        async with self.slots:
            return await self.handler(data)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self._bus._review_servers.remove(self)


class MemoryBus(Bus):
    def __init__(self, shards: int = 16) -> None:
        self.shards = shards
        self._queues: list[asyncio.Queue[ActionEnvelope]] = [asyncio.Queue() for _ in range(shards)]
        self._room_listeners: dict[str, list[RoomListener]] = defaultdict(list)
        self._channel_listeners: dict[str, list[DataListener]] = defaultdict(list)
        self.log_queue_max = 100_000  # deliveries; the in-memory twin of the broker's byte bound
        self._logs: deque[tuple[str, bytes]] = deque()
        self._logs_changed = asyncio.Condition()
        self._log_active = asyncio.Lock()  # one active log consumer, like single-active-consumer
        self._review_servers: list[_MemoryReviewServer] = []
        self._review_turn = 0

    async def publish_action(self, action: ActionEnvelope) -> None:
        # Round-trip through the wire encoding so embedded mode exercises the same codec.
        self._queues[self.shard_of(action.room_id)].put_nowait(ActionEnvelope.decode(action.encode()))

    async def consume_shard(self, shard: int, handler: ActionHandler) -> ShardConsumer:
        queue = self._queues[shard]

        async def pump() -> None:
            while True:
                action = await queue.get()
                await handler(action, _noop_ack, False)

        return _MemoryShardConsumer(asyncio.create_task(pump(), name=f"shard-{shard}"))

    async def publish_rooms(self, deliveries: list[tuple[str, bytes]]) -> None:
        for room_id, data in deliveries:
            for listener in list(self._room_listeners.get(room_id, ())):
                listener(room_id, data)

    def _publish_channel(self, channel: str, data: bytes) -> None:
        for listener in list(self._channel_listeners.get(channel, ())):
            listener(data)

    async def publish_gateway(self, gateway_id: str, data: bytes) -> None:
        self._publish_channel(f"gw:{gateway_id}", data)

    async def publish_control(self, data: bytes) -> None:
        self._publish_channel("control", data)

    async def subscribe(
        self,
        gateway_id: str,
        on_room: RoomListener | None,
        on_gateway: DataListener | None,
        on_control: DataListener | None = None,
    ) -> Subscription:
        subscription = _MemorySubscription(self, on_room)
        for channel, listener in ((f"gw:{gateway_id}", on_gateway), ("control", on_control)):
            if listener is not None:
                self._channel_listeners[channel].append(listener)
                subscription.listeners.append((channel, listener))
        return subscription

    async def request_review(self, data: bytes, timeout: float) -> bytes | None:
        if not self._review_servers:
            return None  # nobody serves reviews: the same outcome as the broker's expired request
        self._review_turn += 1  # competing servers take turns, like consumers of one queue
        server = self._review_servers[self._review_turn % len(self._review_servers)]
        try:
            return await asyncio.wait_for(server.serve(bytes(data)), timeout)
        except Exception:  # a timeout or a failing server: the caller falls back
            return None

    async def serve_reviews(self, handler: ReviewHandler, concurrency: int) -> ShardConsumer:
        server = _MemoryReviewServer(self, handler, concurrency)
        self._review_servers.append(server)
        return server

    # --- chat logs ----------------------------------------------------------------------
    async def publish_log(self, room_id: str, data: bytes) -> None:
        if len(self._logs) >= self.log_queue_max:  # never wait for a slow sink: drop, counted
            metrics.LOG_DELIVERIES_DROPPED.inc()
            return
        self._logs.append((room_id, data))
        async with self._logs_changed:
            self._logs_changed.notify_all()

    async def consume_logs(self, handler: LogHandler, prefetch: int = 1000) -> LogConsumer:
        return _MemoryLogConsumer(self, handler, prefetch)
