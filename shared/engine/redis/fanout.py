"""Redis :class:`~shared.engine.fanout.Fanout`: pub/sub channels, published through the ordered pipeline.

Owns, under ``namespace``, the channels ``{ns}:room:{room_id}``, ``{ns}:gw:{gateway_id}`` and
``{ns}:control``. Room and gateway publishes go through the process's ordered
:class:`~shared.engine.redis.pipeline.RedisPipeline` (the store's, when the process has one), so
they run in call order with the store's writes and share their round trip. One dedicated
subscriber connection per fan-out (:class:`PubSubHub`) carries every subscription of the process.

Must not open a connection pool of its own beside the process's Redis client; only the
subscriber connection is its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.engine.channels import HubSubscription
from shared.engine.fanout import DataListener, Fanout, ResubscribedListener, RoomListener, Subscription
from shared.engine.redis import connect
from shared.engine.redis.connect import RedisTarget
from shared.engine.redis.pipeline import Command, RedisPipeline, completion

log = structlog.get_logger(__name__)

CLOSE_TIMEOUT = 5.0  # closing a client of our own must not hang on a dead Redis
SUBSCRIBE_TIMEOUT = 5.0
RECONNECT_MAX_DELAY = 2.0


class PubSubHub:
    """One Redis subscriber connection shared by every Subscription of a bus.

    A single reader task reads replies and dispatches messages to listeners. We drive the raw
    connection rather than redis-py's PubSub so reconnects are explicit (logged, re-subscribed
    from our own channel table) and the per-message path is just parse + dict lookup.
    """

    def __init__(self, redis: RedisTarget | str, client_name: str) -> None:
        # socket_timeout stays None: the reader blocks until a message or a disconnect.
        # socket_connect_timeout bounds a reconnect attempt, which holds the subscription lock.
        # With Sentinel each (re)connect asks the sentinels where the master is now.
        self._pool = connect.connection_pool(
            redis, client_name=client_name, socket_keepalive=True, socket_connect_timeout=5
        )
        self._conn: AbstractConnection = self._pool.make_connection()
        self._listeners: dict[bytes, list[DataListener]] = {}
        self._confirmed: dict[bytes, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()  # serializes (re)subscription against the channel table
        self._up = False  # connected and every channel in _listeners (re)subscribed
        self._reader: asyncio.Task[None] | None = None
        self.reconnects = 0
        self.on_resubscribed: list[ResubscribedListener] = []  # told on every reconnect

    async def start(self) -> None:
        await self._connect()
        self._reader = asyncio.create_task(self._read_forever(), name="redis-pubsub-reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        self._up = False
        with contextlib.suppress(Exception):
            await self._conn.disconnect(nowait=True)
        with contextlib.suppress(Exception):
            await self._pool.aclose()
        for fut in self._confirmed.values():
            if not fut.done():
                fut.set_result(None)

    def _pending(self, channel: bytes) -> asyncio.Future[None]:
        fut = self._confirmed.get(channel)
        if fut is None or fut.done():
            fut = asyncio.get_running_loop().create_future()
            self._confirmed[channel] = fut
        return fut

    async def _connect(self) -> None:
        async with self._lock:
            await self._conn.connect()
            channels = list(self._listeners)
            for channel in channels:
                self._pending(channel)
            if channels:
                await self._conn.send_command("SUBSCRIBE", *channels, check_health=False)
            self._up = True
        if self.reconnects:
            log.info("redis.pubsub_resubscribed", channels=len(channels), reconnects=self.reconnects)
            self._tell_resubscribed(channels)

    def _tell_resubscribed(self, channels: list[bytes]) -> None:
        """Called by the reader before it reads from the new connection, so listeners hear of
        the reconnect before any of its messages."""
        if not self.on_resubscribed:
            return
        pending = [self._confirmed[c] for c in channels if c in self._confirmed]

        async def confirmed() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*map(asyncio.shield, pending)), SUBSCRIBE_TIMEOUT)

        for listener in tuple(self.on_resubscribed):
            try:
                listener(confirmed())
            except Exception:
                log.exception("redis.resubscribed_listener_failed")

    async def _read_forever(self) -> None:
        delay = 0.05
        while True:
            try:
                if not self._up:
                    await self._connect()
                    delay = 0.05
                # math.inf: block without a timeout (redis-py's opt-in); no polling, no per-read timer.
                # push_request: redis-py 8 speaks RESP3, where pub/sub messages are push frames
                # that the parser otherwise diverts to a push handler instead of returning.
                reply = await self._conn.read_response(timeout=math.inf, disconnect_on_error=False, push_request=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                # Whatever broke, the reader must outlive it: reconnect and re-subscribe.
                self._up = False
                self.reconnects += 1
                log.warning("redis.pubsub_lost", error_type=type(exc).__name__, error=str(exc), retry_in=delay)
                with contextlib.suppress(Exception):
                    await self._conn.disconnect(nowait=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY)
                continue
            self._dispatch(reply)

    def _dispatch(self, reply: Any) -> None:
        if not isinstance(reply, list) or len(reply) < 3:
            return
        kind = reply[0]
        if kind == b"message":
            for listener in tuple(self._listeners.get(reply[1], ())):
                try:
                    listener(reply[2])
                except Exception:
                    log.exception("redis.listener_failed", channel=reply[1].decode(errors="replace"))
        elif kind == b"subscribe":
            fut = self._confirmed.get(reply[1])
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def add(self, channel: bytes, listener: DataListener) -> None:
        """Returns once Redis confirmed the subscription, so a publish right after is seen."""
        fut: asyncio.Future[None] | None
        async with self._lock:
            listeners = self._listeners.setdefault(channel, [])
            listeners.append(listener)
            if len(listeners) == 1:
                fut = self._pending(channel)
                if self._up:
                    with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                        # On failure the reader notices, reconnects and subscribes from the table.
                        await self._conn.send_command("SUBSCRIBE", channel, check_health=False)
            else:  # already subscribed for another listener; wait only if still unconfirmed
                fut = self._confirmed.get(channel)
        if fut is None or fut.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(fut), SUBSCRIBE_TIMEOUT)
        except TimeoutError:
            # Still in the table: the next reconnect subscribes it. Fan-out is at most once anyway.
            log.warning("redis.subscribe_unconfirmed", channel=channel.decode(errors="replace"))

    async def remove(self, channel: bytes, listener: DataListener) -> None:
        async with self._lock:
            listeners = self._listeners.get(channel)
            if not listeners or listener not in listeners:
                return
            listeners.remove(listener)
            if listeners:
                return
            del self._listeners[channel]
            fut = self._confirmed.pop(channel, None)
            if fut is not None and not fut.done():
                fut.set_result(None)
            if self._up:
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                    await self._conn.send_command("UNSUBSCRIBE", channel, check_health=False)


class RedisFanout(Fanout):
    """``redis`` and ``pipeline`` are the process's (the store's); without them a client is made
    from ``target`` (a URL, or a Sentinel :class:`RedisTarget`) and closed with the fan-out. The
    subscriber connection always comes from ``target``, made on the first ``subscribe``."""

    def __init__(
        self,
        target: RedisTarget | str,
        namespace: str,
        *,
        redis: Redis | None = None,
        pipeline: RedisPipeline | None = None,
    ) -> None:
        self._target = target
        self._ns = namespace
        self.subscriber_name = f"parley:{namespace}:pubsub"  # CLIENT SETNAME of the subscriber connection
        if redis is None and pipeline is not None:
            redis = pipeline.redis
        self._owns_redis = redis is None
        # Building a client does not connect: publishing works without start().
        self._redis = redis if redis is not None else connect.client(target)
        self._pipeline = pipeline if pipeline is not None else RedisPipeline(self._redis)
        self._hub: PubSubHub | None = None
        self._hub_lock = asyncio.Lock()
        self._closed = False

    def room_channel(self, room_id: str) -> bytes:
        return f"{self._ns}:room:{room_id}".encode()

    def gateway_channel(self, gateway_id: str) -> bytes:
        return f"{self._ns}:gw:{gateway_id}".encode()

    def control_channel(self) -> bytes:
        return f"{self._ns}:control".encode()

    @property
    def reconnects(self) -> int:
        """How often the subscriber connection was lost and made again."""
        return 0 if self._hub is None else self._hub.reconnects

    def publish_rooms(self, deliveries: list[tuple[str, bytes]]) -> Awaitable[None]:
        # Every delivery of this loop turn goes out in one pipeline, the store's when shared.
        return self._publish([("PUBLISH", self.room_channel(room_id), data) for room_id, data in deliveries])

    def publish_gateway(self, gateway_id: str, data: bytes) -> Awaitable[None]:
        return self._publish([("PUBLISH", self.gateway_channel(gateway_id), data)])

    def _publish(self, commands: list[Command]) -> Awaitable[None]:
        return completion(self._pipeline.submit(commands) if commands else None)

    async def publish_control(self, data: bytes) -> None:
        await self._redis.publish(self.control_channel(), data)

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
                hub = PubSubHub(self._target, self.subscriber_name)
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
