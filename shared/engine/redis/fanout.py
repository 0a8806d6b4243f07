"""Redis :class:`~shared.engine.fanout.Fanout`: pub/sub channels, published through the ordered pipeline.

Owns, under ``namespace``, the channels ``{ns}:room:{room_id}``, ``{ns}:gw:{gateway_id}`` and
``{ns}:control`` (named by :class:`~shared.engine.redis.keys.KeySpace`). Room and gateway
publishes go through the process's ordered :class:`~shared.engine.redis.pipeline.RedisPipeline`
(the store's, when the process has one), so they run in call order with the store's writes and
share their round trip. The subscriber connections (:class:`~shared.engine.redis.subscriber.PubSubHub`,
one per server) carry every subscription of the process. Under Redis Cluster every channel is a
sharded one (``SPUBLISH``/``SSUBSCRIBE``), and a room's channel shares the hash slot of the room's
history, so a router's history append and its publish go to one node, in order.

Must not open a connection pool of its own beside the process's Redis client; only the
subscriber connections are its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from redis.asyncio import RedisCluster

from shared.engine.channels import HubSubscription
from shared.engine.fanout import DataListener, Fanout, ResubscribedListener, RoomListener, Subscription
from shared.engine.redis import connect
from shared.engine.redis.connect import AnyRedis, RedisTarget
from shared.engine.redis.keys import KeySpace
from shared.engine.redis.pipeline import Command, RedisPipeline, completion
from shared.engine.redis.subscriber import PubSubHub

CLOSE_TIMEOUT = 5.0  # closing a client of our own must not hang on a dead Redis


class RedisFanout(Fanout):
    """``redis`` and ``pipeline`` are the process's (the store's); without them a client is made
    from ``target`` (a URL, or a Sentinel :class:`RedisTarget`) and closed with the fan-out. The
    subscriber connection always comes from ``target``, made on the first ``subscribe``."""

    def __init__(
        self,
        target: RedisTarget | str,
        namespace: str,
        *,
        redis: AnyRedis | None = None,
        pipeline: RedisPipeline | None = None,
    ) -> None:
        self._target = RedisTarget.of(target)
        self._keys = KeySpace(namespace, clustered=self._target.cluster)
        self.subscriber_name = f"parley:{namespace}:pubsub"  # CLIENT SETNAME of the subscriber connection
        if redis is None and pipeline is not None:
            redis = pipeline.redis
        self._owns_redis = redis is None
        # Building a client does not connect: publishing works without start().
        self._redis = redis if redis is not None else connect.client(target)
        self._pipeline = pipeline if pipeline is not None else RedisPipeline(self._redis)
        self._cluster = self._redis if isinstance(self._redis, RedisCluster) else None
        self._publish_command = "SPUBLISH" if self._cluster is not None else "PUBLISH"
        self._hub: PubSubHub | None = None
        self._hub_lock = asyncio.Lock()
        self._closed = False

    def room_channel(self, room_id: str) -> bytes:
        return self._keys.room_channel(room_id)

    def gateway_channel(self, gateway_id: str) -> bytes:
        return self._keys.gateway_channel(gateway_id)

    def control_channel(self) -> bytes:
        return self._keys.control_channel()

    @property
    def reconnects(self) -> int:
        """How often the subscriber connection was lost and made again."""
        return 0 if self._hub is None else self._hub.reconnects

    def publish_rooms(self, deliveries: list[tuple[str, bytes]]) -> Awaitable[None]:
        # Every delivery of this loop turn goes out in one pipeline, the store's when shared.
        command = self._publish_command
        return self._publish([(command, self.room_channel(room_id), data) for room_id, data in deliveries])

    def publish_gateway(self, gateway_id: str, data: bytes) -> Awaitable[None]:
        return self._publish([(self._publish_command, self.gateway_channel(gateway_id), data)])

    def _publish(self, commands: list[Command]) -> Awaitable[None]:
        return completion(self._pipeline.submit(commands) if commands else None)

    async def publish_control(self, data: bytes) -> None:
        await self._pipeline.submit([(self._publish_command, self.control_channel(), data)])

    async def subscribe(
        self,
        gateway_id: str,
        on_room: RoomListener | None,
        on_gateway: DataListener | None,
        on_control: DataListener | None = None,
        on_resubscribed: ResubscribedListener | None = None,
    ) -> Subscription:
        async with self._hub_lock:
            if self._closed:
                raise RuntimeError("bus is closed")
            if self._hub is None:
                hub = PubSubHub(self._target, self.subscriber_name, self._cluster)
                await hub.start()
                self._hub = hub
            if on_resubscribed is not None:
                self._hub.on_resubscribed.append(on_resubscribed)
        subscription = HubSubscription(self._hub, self.room_channel, on_room)
        if on_gateway is not None:
            await subscription.listen(self.gateway_channel(gateway_id), on_gateway)
        if on_control is not None:
            await subscription.listen(self.control_channel(), on_control)
        return subscription

    async def close(self) -> None:
        """Close the subscriber connection, and the client when it is this fan-out's own."""
        async with self._hub_lock:
            self._closed = True
        if self._hub is not None:
            await self._hub.close()
        if self._owns_redis:
            self._pipeline.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connect.close_client(self._redis), CLOSE_TIMEOUT)
