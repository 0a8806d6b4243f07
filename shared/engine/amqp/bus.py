"""``AmqpRedisBus``: the production :class:`~shared.engine.bus.Bus`.

RabbitMQ carries the actions (``shared.engine.amqp.actions``), the review RPC
(``shared.engine.amqp.review_rpc``) and the log stream (``shared.engine.amqp.logstream``) over
one connection (``shared.engine.amqp.connection``); Redis pub/sub carries the fan-out
(``shared.engine.redis.fanout``) over the process's Redis client and ordered pipeline. This
module only assembles them and runs their shared lifecycle.

Must not import any component, and must behave like ``shared.engine.memory.MemoryBus``
(the ``tests/test_engine_*.py`` suites run the same tests against both).
"""

from __future__ import annotations

import asyncio

from shared.engine.amqp.actions import AmqpActions
from shared.engine.amqp.connection import AmqpConnection
from shared.engine.amqp.failover import connect_nodes
from shared.engine.amqp.logstream import DEFAULT_MAX_BYTES, AmqpLogStream
from shared.engine.amqp.queues import QueueType, parse_queue_type
from shared.engine.amqp.review_rpc import AmqpReviewRpc
from shared.engine.bus import Bus
from shared.engine.redis.connect import AnyRedis, RedisTarget
from shared.engine.redis.fanout import RedisFanout
from shared.engine.redis.pipeline import RedisPipeline


class AmqpRedisBus(Bus):
    actions: AmqpActions
    fanout: RedisFanout
    reviews: AmqpReviewRpc
    logs: AmqpLogStream

    def __init__(
        self,
        amqp_url: str,
        redis_target: RedisTarget | str,
        namespace: str,
        shards: int = 16,
        prefetch: int = 256,
        durable_actions: bool = True,
        pipeline: RedisPipeline | None = None,
        redis: AnyRedis | None = None,
        log_queue_max_bytes: int = DEFAULT_MAX_BYTES,
        queue_type: QueueType | str = QueueType.QUORUM,
    ) -> None:
        """``pipeline`` and ``redis``: the process's ordered pipeline and Redis client (the
        store's, see ``parley.runtime.real_backends``); without them the fan-out makes its own.
        ``queue_type``: of every durable queue (``PARLEY_AMQP_QUEUE_TYPE``); all processes of a
        namespace must agree (``shared.engine.amqp.queues``)."""
        queue_type = parse_queue_type(queue_type)
        self.connection = AmqpConnection(amqp_url)
        super().__init__(
            AmqpActions(self.connection, namespace, shards, prefetch, durable_actions, queue_type),
            RedisFanout(redis_target, namespace, redis=redis, pipeline=pipeline),
            AmqpReviewRpc(self.connection, namespace, queue_type),
            AmqpLogStream(self.connection, namespace, log_queue_max_bytes, queue_type),
        )
        # Declared by every process on connect: a publish before any consumer started is kept.
        self.connection.on_open(self.actions.declare)
        self.connection.on_open(self.logs.declare)
        self.connection.on_open(self.reviews.declare)

    async def start(self) -> None:
        await self.connection.open()

    async def close(self) -> None:
        await self.connection.close(self._stop_paths)

    async def _stop_paths(self) -> None:
        await self.actions.close()
        await self.logs.close()
        await self.reviews.close()
        await self.fanout.close()

    async def destroy(self) -> None:
        """Delete this namespace's queues and exchange (tests). Works before or after close()."""
        async with asyncio.timeout(30):  # a teardown must fail, never hang
            connection = await connect_nodes(self.connection.url)
            try:
                channel = await connection.channel()
                await self.actions.delete(channel)
                await self.logs.delete(channel)
                await self.reviews.delete(channel)
            finally:
                await connection.close()
