"""In-process :class:`~shared.engine.actions.Actions`: one asyncio queue per shard.

Nothing is acked (nothing survives the process to be redelivered), so ``redelivered`` is
always False and ``ack`` does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib

from shared.engine.actions import ActionHandler, Actions, Settle, ShardConsumer
from shared.protocol.envelope import ActionEnvelope


async def _noop_ack() -> None:
    return None


class MemoryShardConsumer(ShardConsumer):
    def __init__(self, task: asyncio.Task[None]) -> None:
        self._task = task

    async def stop(self, settle: Settle | None = None) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if settle is not None:
            await settle()


class MemoryActions(Actions):
    def __init__(self, shards: int = 16) -> None:
        self.shards = shards
        self._queues: list[asyncio.Queue[ActionEnvelope]] = [asyncio.Queue() for _ in range(shards)]

    async def publish(self, action: ActionEnvelope) -> None:
        # Round-trip through the wire encoding so embedded mode exercises the same codec.
        self._queues[self.shard_of(action.room_id)].put_nowait(ActionEnvelope.decode(action.encode()))

    async def consume_shard(self, shard: int, handler: ActionHandler) -> ShardConsumer:
        queue = self._queues[shard]

        async def pump() -> None:
            while True:
                action = await queue.get()
                await handler(action, _noop_ack, False)

        return MemoryShardConsumer(asyncio.create_task(pump(), name=f"shard-{shard}"))
