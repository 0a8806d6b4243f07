"""``AmqpRedisBus``: the production :class:`~shared.engine.bus.Bus`.

Owns, under ``namespace``:

- RabbitMQ: the durable direct exchange ``{ns}.actions`` and one durable classic queue per shard,
  ``{ns}.actions.{shard}`` (``x-single-active-consumer``), bound by ``str(shard)``. Actions are
  persistent (unless ``durable_actions=False``) and published with publisher confirms; consumers
  ack manually.
- Redis pub/sub: ``{ns}:room:{room_id}``, ``{ns}:gw:{gateway_id}`` and ``{ns}:control``. One
  subscriber connection per bus carries every subscription of the process.
- Chat logs: the durable queue ``{ns}.logs`` (default exchange), single-active-consumer so one
  logger sink at a time drains it in order (others are hot standbys), bounded by
  ``x-max-length-bytes`` with ``x-overflow: reject-publish``: when sinks fall that far behind
  the broker nacks new deliveries and ``publish_log`` counts and drops them, so chat never waits.
- Reviews (RPC over RabbitMQ): the transient queue ``{ns}.reviews`` that every reviewer consumes
  (competing consumers, prefetch = its concurrency); each request carries a per-message
  ``expiration`` equal to the caller's timeout, so a request nobody took in time dies in the queue.
  Replies go to the caller's exclusive ``{ns}.review-replies.{random}`` queue, matched by
  ``correlation_id``. Requests and replies are transient and unconfirmed: a lost one is a timeout,
  and the caller falls back.

Must not import any component, and must behave like ``shared.engine.memory.MemoryBus``
(``tests/test_bus.py`` runs the same tests against both).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import msgpack
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import ChannelInvalidStateError, DeliveryError, MessageProcessError
from aiormq.exceptions import AMQPError
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

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
from shared.engine.coalesce import TurnBatcher
from shared.engine.redis.pipeline import Command, RedisPipeline, completion
from shared.protocol.envelope import ActionEnvelope

log = structlog.get_logger(__name__)

Listener = Callable[[bytes], None]

# Bounds for the waits that must never hang close()/stop() on a dead broker.
CLOSE_TIMEOUT = 5.0
SETTLE_TIMEOUT = 10.0  # a released shard's batches in flight; past it they may be redelivered
SUBSCRIBE_TIMEOUT = 5.0
RECONNECT_MAX_DELAY = 2.0


# --- acks ----------------------------------------------------------------------------------------
class _AckCoalescer:
    """Acks of one consumer channel, sent once per event-loop turn instead of one frame each.

    Deliveries are registered in arrival (delivery-tag) order; ``ack`` only marks one done. At the
    end of the turn the longest done prefix is acked with one ``basic.ack(multiple=True)`` and done
    deliveries behind a still-pending one are acked singly, so a slow room never holds back
    another's acks (nor the prefetch window). Acks are fire-and-forget in AMQP anyway; one that
    never reaches the broker (channel lost) means a redelivery, which frame-id de-duplication and
    the log sink's ``--unique`` already absorb.
    """

    def __init__(self, what: str) -> None:
        self._what = what
        # aiormq channel → {delivery tag: done?} in tag order; a reconnect brings a new channel
        self._outstanding: dict[Any, dict[int, bool]] = {}
        self._scheduled = False
        self._closed = False

    def register(self, message: AbstractIncomingMessage) -> Ack:
        channel, tag = message.channel, message.delivery_tag
        assert tag is not None
        self._outstanding.setdefault(channel, {})[tag] = False

        async def ack() -> None:
            if self._closed:
                return  # the channel is closing: the broker requeues it, de-duplication skips it
            tags = self._outstanding.get(channel)
            if tags is None:  # the channel closed (queue deleted, connection lost): requeued already
                log.debug("amqp.ack_after_close", what=self._what)
                return
            if tags.get(tag) is not False:
                log.warning("amqp.double_ack", what=self._what)
                return
            tags[tag] = True
            if not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self.flush)

        return ack

    def close(self) -> None:
        """Send what is done, then nothing more: call before closing the channel. A frame that
        reached the broker after its close-ok would be a connection error (504), dropping every
        channel of the connection."""
        self.flush()
        self._closed = True
        self._outstanding.clear()

    def flush(self) -> None:
        self._scheduled = False
        if self._closed:
            return
        for channel, tags in list(self._outstanding.items()):
            if channel.is_closed:  # the broker requeued all of them already
                del self._outstanding[channel]
                continue
            frames: list[tuple[int, bool]] = []
            prefix = None
            for tag, done in list(tags.items()):
                if not done:
                    break
                prefix = tag
                del tags[tag]
            if prefix is not None:
                frames.append((prefix, True))
            for tag, done in list(tags.items()):
                if done:
                    frames.append((tag, False))
                    del tags[tag]
            for tag, multiple in frames:
                # wait=False: queued on the connection's writer, nothing to await per frame
                task = asyncio.ensure_future(channel.basic_ack(tag, multiple=multiple, wait=False))
                task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # The channel is gone: the broker put the messages back and will redeliver them.
            log.debug("amqp.ack_after_close", what=self._what, error=repr(task.exception()))


# --- actions (RabbitMQ) ------------------------------------------------------------------------
class _AmqpShardConsumer(ShardConsumer):
    """Hands one shard's messages to the handler one at a time, in delivery order."""

    def __init__(self, shard: int, channel: AbstractChannel, queue: AbstractQueue, handler: ActionHandler) -> None:
        self.shard = shard
        self.malformed = 0  # messages dropped because they did not decode
        self._channel = channel
        self._queue = queue
        self._handler = handler
        # aiormq runs each delivery callback as a task, in arrival order; a plain FIFO keeps that
        # order and lets stop() decide exactly which messages were handed out.
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._tag: str | None = None
        self._acks = _AckCoalescer(f"shard {shard}")
        self._stopping = False
        self._in_handler = False
        self._pump: asyncio.Task[None] | None = None
        self._stopped: asyncio.Future[None] | None = None

    async def start(self) -> None:
        self._tag = await self._queue.consume(self._on_message)
        self._pump = asyncio.create_task(self._run(), name=f"amqp-shard-{self.shard}")

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._inbox.put_nowait(message)

    async def _run(self) -> None:
        while not self._stopping:
            message = await self._inbox.get()
            if self._stopping:
                return  # left unacked: closing the channel gives it back to the broker
            try:
                actions = decode_actions(message)
            except Exception as exc:  # noqa: BLE001 - any garbage must not stop the shard
                self.malformed += 1
                log.warning("amqp.malformed_action", shard=self.shard, size=len(message.body), error=repr(exc))
                with contextlib.suppress(AMQPError, ChannelInvalidStateError, MessageProcessError):
                    await message.reject(requeue=False)
                continue
            # A batch is acked to the broker once every action in it is acked by the handler.
            ack = self._acks.register(message)
            if len(actions) > 1:
                ack = _all_parts(ack, len(actions))
            redelivered = bool(message.redelivered)
            self._in_handler = True
            try:
                for action in actions:
                    await self._handler(action, ack, redelivered)
            except Exception:
                # The message stays unacked (the handler owns the ack); it comes back when the
                # channel closes.
                log.exception("amqp.handler_failed", shard=self.shard, frame_id=action.frame_id)
            finally:
                self._in_handler = False

    async def stop(self, settle: Settle | None = None) -> None:
        if self._stopped is not None:
            return await asyncio.shield(self._stopped)
        self._stopped = asyncio.get_running_loop().create_future()
        try:
            self._stopping = True
            # No basic.cancel first: with single-active-consumer that would make the next
            # consumer active at once, taking newer actions before ours come back. Deliveries
            # that still arrive wait in the inbox, unacked, and go back with the rest.
            # (stop() may be called by the handler itself, i.e. from the pump: never await it.)
            if self._pump is not None and self._pump is not asyncio.current_task():
                if not self._in_handler:
                    self._pump.cancel()  # it is waiting on the inbox, nothing is lost
                done, _ = await asyncio.wait({self._pump}, timeout=CLOSE_TIMEOUT)
                if not done:  # a handler that never returns must not hang shutdown
                    self._pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._pump
            if settle is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(settle(), SETTLE_TIMEOUT)
            self._acks.close()  # acks the handler already gave must not turn into redeliveries
            # Closing the channel makes the broker requeue everything unacked: both what the
            # handler did not ack and what was prefetched but never handed out.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._channel.close(), CLOSE_TIMEOUT)
        finally:
            self._stopped.set_result(None)


BATCH_TYPE = "parley.actions.batch"  # AMQP ``type`` of a message carrying several actions
MAX_BATCH_ACTIONS = 512


def encode_batch(encoded_actions: list[bytes]) -> bytes:
    return msgpack.packb(encoded_actions)


def decode_actions(message: AbstractIncomingMessage) -> list[ActionEnvelope]:
    """The actions one broker message carries: one, or a batch in publish order."""
    if message.type == BATCH_TYPE:
        return [ActionEnvelope.decode(item) for item in msgpack.unpackb(message.body)]
    return [ActionEnvelope.decode(message.body)]


def _all_parts(ack_message: Ack, parts: int) -> Ack:
    """A batch is acked to the broker once every action in it is acked by the handler."""
    remaining = parts

    async def ack() -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0:
            await ack_message()

    return ack


# --- reviews (RabbitMQ RPC) ------------------------------------------------------------------
class _AmqpReviewServer(ShardConsumer):
    """Answers review requests concurrently (aiormq runs each delivery as its own task); the
    channel's prefetch bounds how many this process holds, so busy reviewers get fewer."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue, handler: ReviewHandler) -> None:
        self._channel = channel
        self._queue = queue
        self._handler = handler
        self._tag: str | None = None
        self._inflight: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._tag = await self._queue.consume(self._on_message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            reply = await self._handler(message.body)
            if reply is not None and message.reply_to:
                await self._channel.default_exchange.publish(
                    aio_pika.Message(reply, correlation_id=message.correlation_id),
                    routing_key=message.reply_to,
                )
        except Exception as exc:  # noqa: BLE001 - the caller times out and falls back
            log.warning("amqp.review_failed", error_type=type(exc).__name__)
        finally:
            # Acked whether or not it was answered: a review is never retried (its caller has moved on).
            with contextlib.suppress(AMQPError, ChannelInvalidStateError, MessageProcessError):
                await message.ack()
            if task is not None:
                self._inflight.discard(task)

    async def stop(self, settle: Settle | None = None) -> None:
        if self._tag is not None and not self._channel.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._queue.cancel(self._tag), CLOSE_TIMEOUT)
            self._tag = None
        if self._inflight:  # let reviews in progress answer (each is bounded by its budget)
            await asyncio.wait(set(self._inflight), timeout=CLOSE_TIMEOUT)
        if settle is not None:
            await settle()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._channel.close(), CLOSE_TIMEOUT)


# --- chat logs (RabbitMQ) --------------------------------------------------------------------
class _AmqpLogConsumer(LogConsumer):
    """Hands log deliveries to the handler one at a time in queue order; acks come from the
    handler whenever the sink has written them (in any order)."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue, handler: LogHandler) -> None:
        self._channel = channel
        self._queue = queue
        self._handler = handler
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._tag: str | None = None
        self._pump: asyncio.Task[None] | None = None
        self._acks = _AckCoalescer("logs")

    async def start(self) -> None:
        self._tag = await self._queue.consume(self._on_message)
        self._pump = asyncio.create_task(self._run(), name="amqp-logs")

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._inbox.put_nowait(message)

    async def _run(self) -> None:
        while True:
            message = await self._inbox.get()
            room_id = str((message.headers or {}).get("room", ""))
            try:
                # After a channel loss the broker has requeued it already: the sink may write it twice.
                await self._handler(room_id, message.body, self._acks.register(message))
            except Exception:  # stays unacked; it comes back when the channel closes
                log.exception("amqp.log_handler_failed", room_id=room_id)

    async def stop(self) -> None:
        if self._tag is not None and not self._channel.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._queue.cancel(self._tag), CLOSE_TIMEOUT)
            self._tag = None
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
        self._acks.close()
        # Closing the channel requeues every unacked delivery, in order, for the next consumer.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._channel.close(), CLOSE_TIMEOUT)


# --- fan-out (Redis pub/sub) ----------------------------------------------------------------
class _PubSubHub:
    """One Redis subscriber connection shared by every Subscription of a bus.

    A single reader task reads replies and dispatches messages to listeners. We drive the raw
    connection rather than redis-py's PubSub so reconnects are explicit (logged, re-subscribed
    from our own channel table) and the per-message path is just parse + dict lookup.
    """

    def __init__(self, redis_url: str, client_name: str) -> None:
        # socket_timeout stays None: the reader blocks until a message or a disconnect.
        # socket_connect_timeout bounds a reconnect attempt, which holds the subscription lock.
        self._pool = ConnectionPool.from_url(
            redis_url, client_name=client_name, socket_keepalive=True, socket_connect_timeout=5
        )
        self._conn: AbstractConnection = self._pool.make_connection()
        self._listeners: dict[bytes, list[Listener]] = {}
        self._confirmed: dict[bytes, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()  # serializes (re)subscription against the channel table
        self._up = False  # connected and every channel in _listeners (re)subscribed
        self._reader: asyncio.Task[None] | None = None
        self.reconnects = 0

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

    async def add(self, channel: bytes, listener: Listener) -> None:
        """Returns once Redis confirmed the subscription, so a publish right after is seen."""
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

    async def remove(self, channel: bytes, listener: Listener) -> None:
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


class _RedisSubscription(Subscription):
    def __init__(self, bus: AmqpRedisBus, hub: _PubSubHub, on_room: RoomListener | None) -> None:
        self._bus = bus
        self._hub = hub
        self._on_room = on_room
        self._rooms: dict[str, Listener] = {}
        self._channels: list[tuple[bytes, Listener]] = []

    async def _listen(self, channel: bytes, listener: Listener) -> None:
        await self._hub.add(channel, listener)
        self._channels.append((channel, listener))

    async def add_room(self, room_id: str) -> None:
        if self._on_room is None or room_id in self._rooms:
            return
        on_room = self._on_room

        def listener(data: bytes) -> None:
            on_room(room_id, data)

        self._rooms[room_id] = listener
        await self._hub.add(self._bus.room_channel(room_id), listener)

    async def remove_room(self, room_id: str) -> None:
        listener = self._rooms.pop(room_id, None)
        if listener is not None:
            await self._hub.remove(self._bus.room_channel(room_id), listener)

    async def close(self) -> None:
        for room_id in list(self._rooms):
            await self.remove_room(room_id)
        for channel, listener in self._channels:
            await self._hub.remove(channel, listener)
        self._channels.clear()


# --- the bus ---------------------------------------------------------------------------------
class AmqpRedisBus(Bus):
    def __init__(
        self,
        amqp_url: str,
        redis_url: str,
        namespace: str,
        shards: int = 16,
        prefetch: int = 256,
        durable_actions: bool = True,
        pipeline: RedisPipeline | None = None,
    ) -> None:
        self.shards = shards
        self.prefetch = prefetch
        # Persistent actions survive a broker restart; RabbitMQ confirms them after an fsync, which
        # is most of its CPU per message. Transient ones are confirmed from memory: a router crash
        # still loses nothing (unacked deliveries come back), a broker restart loses those queued.
        self._action_delivery_mode = (
            aio_pika.DeliveryMode.PERSISTENT if durable_actions else aio_pika.DeliveryMode.NOT_PERSISTENT
        )
        self._amqp_url = amqp_url
        self._redis_url = redis_url
        self._ns = namespace
        self._exchange_name = f"{namespace}.actions"
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._redis: Redis | None = None
        self._hub: _PubSubHub | None = None
        self._consumers: list[_AmqpShardConsumer] = []
        self._outgoing: dict[int, TurnBatcher[bytes]] = {}  # shard → its actions of this loop turn
        # Room and gateway publishes: the process's shared ordered pipeline (``real_backends``
        # passes the Store's), or this bus's own, made at start().
        self._pipeline = pipeline
        self.log_queue_max_bytes = 1 << 30  # x-max-length-bytes of the log queue; all processes must agree
        self._log_channel: AbstractChannel | None = None
        self._log_consumers: list[_AmqpLogConsumer] = []
        self._review_servers: list[_AmqpReviewServer] = []
        self._rpc_channel: AbstractChannel | None = None
        self._rpc_reply_queue = f"{namespace}.review-replies.{secrets.token_hex(6)}"
        self._rpc_calls: dict[str, asyncio.Future[bytes | None]] = {}
        self._rpc_ids = itertools.count()
        self._rpc_lock = asyncio.Lock()
        self._lock = asyncio.Lock()
        self._started = False
        self._closed = False

    # --- names --------------------------------------------------------------------------
    def log_queue_name(self) -> str:
        return f"{self._ns}.logs"

    def queue_name(self, shard: int) -> str:
        return f"{self._exchange_name}.{shard}"

    def review_queue_name(self) -> str:
        return f"{self._ns}.reviews"

    def room_channel(self, room_id: str) -> bytes:
        return f"{self._ns}:room:{room_id}".encode()

    def gateway_channel(self, gateway_id: str) -> bytes:
        return f"{self._ns}:gw:{gateway_id}".encode()

    def control_channel(self) -> bytes:
        return f"{self._ns}:control".encode()

    @property
    def malformed(self) -> int:
        """Malformed actions dropped by this bus's consumers (stopped ones included)."""
        return sum(c.malformed for c in self._consumers)

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        async with self._lock:
            if self._closed:
                raise RuntimeError("bus is closed")
            if self._started:
                return
            self._connection = await aio_pika.connect_robust(self._amqp_url)
            # on_return_raises: an action routed to no queue must fail loudly, not vanish.
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            self._exchange = await channel.declare_exchange(
                self._exchange_name, aio_pika.ExchangeType.DIRECT, durable=True
            )
            for shard in range(self.shards):
                queue = await self._declare_queue(channel, shard)
                await queue.bind(self._exchange, routing_key=str(shard))
            # Declared by every process, so a delivery published before any sink started is kept.
            await self._declare_log_queue(channel)
            self._log_channel = channel
            # Blocking pool: bursts wait for a connection rather than fail (MaxConnectionsError).
            pool = BlockingConnectionPool.from_url(self._redis_url, max_connections=64, timeout=10)
            self._redis = Redis(connection_pool=pool)
            if self._pipeline is None:
                self._pipeline = RedisPipeline(self._redis)
            self._started = True

    async def _declare_queue(self, channel: AbstractChannel, shard: int) -> AbstractQueue:
        # Every declaration must carry the same arguments or the broker refuses it.
        return await channel.declare_queue(
            self.queue_name(shard), durable=True, arguments={"x-single-active-consumer": True}
        )

    async def _ensure(self) -> None:
        if not self._started:
            await self.start()

    async def close(self) -> None:
        async with self._lock:
            if self._closed:
                return
            self._closed = True
        for consumer in self._consumers:
            await consumer.stop()
        for log_consumer in self._log_consumers:
            await log_consumer.stop()
        for server in self._review_servers:
            await server.stop()
        for call in self._rpc_calls.values():
            if not call.done():
                call.set_result(None)  # callers waiting on a review fall back now
        if self._hub is not None:
            await self._hub.close()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._redis.aclose(), CLOSE_TIMEOUT)
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._connection.close(), CLOSE_TIMEOUT)

    async def destroy(self) -> None:
        """Delete this namespace's queues and exchange (tests). Works before or after close()."""
        async with asyncio.timeout(30):  # a teardown must fail, never hang
            await self._destroy()

    async def _destroy(self) -> None:
        connection = await aio_pika.connect(self._amqp_url)
        try:
            channel = await connection.channel()
            for shard in range(self.shards):
                await channel.queue_delete(self.queue_name(shard))
            await channel.queue_delete(self.log_queue_name())
            await channel.queue_delete(self.review_queue_name())
            await channel.exchange_delete(self._exchange_name)
        finally:
            await connection.close()

    # --- actions ------------------------------------------------------------------------
    async def publish_action(self, action: ActionEnvelope) -> None:
        """Actions published in the same event-loop turn for one shard travel as one broker
        message (one frame, one confirm, one ack): under load that multiplies what a gateway
        and a router can move, and an idle system still sends each action at once."""
        await self._ensure()
        shard = self.shard_of(action.room_id)
        batcher = self._outgoing.get(shard)
        if batcher is None:
            # serial: while a shard's publish awaits its confirm, the next batch gathers (see coalesce)
            batcher = self._outgoing[shard] = TurnBatcher(
                functools.partial(self._publish_batch, shard), max_items=MAX_BATCH_ACTIONS, serial=True
            )
        await batcher.submit([action.encode()])

    async def _publish_batch(self, shard: int, batch: list[bytes]) -> None:
        assert self._exchange is not None
        metrics.BUS_ACTIONS_PER_PUBLISH.observe(len(batch))
        if len(batch) == 1:
            message = aio_pika.Message(batch[0], delivery_mode=self._action_delivery_mode)
        else:
            message = aio_pika.Message(encode_batch(batch), type=BATCH_TYPE, delivery_mode=self._action_delivery_mode)
        # Awaits this message's confirm only; aiormq keeps concurrent publishes in flight.
        started = time.perf_counter()
        await self._exchange.publish(message, routing_key=str(shard))
        metrics.BUS_CONFIRM_SECONDS.observe(time.perf_counter() - started)

    async def _consumer_channel(self, prefetch: int) -> AbstractChannel:
        """A consumer's own channel: its prefetch window, and closing it requeues its unacked."""
        await self._ensure()
        assert self._connection is not None
        channel = await self._connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def consume_shard(self, shard: int, handler: ActionHandler) -> ShardConsumer:
        # A channel per shard: its prefetch window and its close (requeue) are the shard's own.
        channel = await self._consumer_channel(self.prefetch)
        queue = await self._declare_queue(channel, shard)
        consumer = _AmqpShardConsumer(shard, channel, queue, handler)
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    # --- reviews ------------------------------------------------------------------------
    async def _declare_review_queue(self, channel: AbstractChannel) -> AbstractQueue:
        # Transient: in-flight reviews are worth nothing after a broker restart (callers fell back).
        return await channel.declare_queue(self.review_queue_name(), durable=False)

    async def _rpc(self) -> AbstractChannel:
        """The caller side, set up on first use (routers without reviewed rooms never need it)."""
        async with self._rpc_lock:
            if self._rpc_channel is None:
                await self._ensure()
                assert self._connection is not None
                channel = await self._connection.channel(publisher_confirms=False)
                await self._declare_review_queue(channel)
                # Client-named (not amq.gen-*) so the robust channel can re-declare it after a reconnect.
                replies = await channel.declare_queue(self._rpc_reply_queue, exclusive=True, auto_delete=True)
                await replies.consume(self._on_review_reply, no_ack=True)
                self._rpc_channel = channel
            return self._rpc_channel

    async def _on_review_reply(self, message: AbstractIncomingMessage) -> None:
        call = self._rpc_calls.get(message.correlation_id or "")
        if call is not None and not call.done():
            call.set_result(message.body)
        # else: the caller already timed out and fell back; the late answer is dropped.

    async def request_review(self, data: bytes, timeout: float) -> bytes | None:
        call_id = f"{next(self._rpc_ids):x}"
        call: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._rpc_calls[call_id] = call
        try:
            async with asyncio.timeout(timeout):
                channel = await self._rpc()
                message = aio_pika.Message(
                    data,
                    correlation_id=call_id,
                    reply_to=self._rpc_reply_queue,
                    expiration=timeout,  # dies in the queue once the caller has given up on it
                    delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
                )
                await channel.default_exchange.publish(message, routing_key=self.review_queue_name())
                return await call
        except Exception as exc:  # noqa: BLE001 - timeout or broker trouble: the caller falls back
            if not isinstance(exc, TimeoutError):
                log.warning("amqp.review_request_failed", error_type=type(exc).__name__)
            return None
        finally:
            del self._rpc_calls[call_id]

    async def serve_reviews(self, handler: ReviewHandler, concurrency: int) -> ShardConsumer:
        channel = await self._consumer_channel(concurrency)
        queue = await self._declare_review_queue(channel)
        server = _AmqpReviewServer(channel, queue, handler)
        await server.start()
        self._review_servers.append(server)
        return server

    # --- fan-out ------------------------------------------------------------------------
    def publish_rooms(self, deliveries: list[tuple[str, bytes]]) -> Awaitable[None]:
        # Every delivery of this loop turn goes out in one pipeline, the Store's when shared.
        return self._publish([("PUBLISH", self.room_channel(room_id), data) for room_id, data in deliveries])

    def publish_gateway(self, gateway_id: str, data: bytes) -> Awaitable[None]:
        return self._publish([("PUBLISH", self.gateway_channel(gateway_id), data)])

    def _publish(self, commands: list[Command]) -> Awaitable[None]:
        if self._pipeline is None:  # before start(): nothing to keep in order with yet
            return self._start_then_publish(commands)
        return completion(self._pipeline.submit(commands) if commands else None)

    async def _start_then_publish(self, commands: list[Command]) -> None:
        await self._ensure()
        await self._publish(commands)

    async def publish_control(self, data: bytes) -> None:
        await self._ensure()
        assert self._redis is not None
        await self._redis.publish(self.control_channel(), data)

    async def subscribe(
        self,
        gateway_id: str,
        on_room: RoomListener | None,
        on_gateway: DataListener | None,
        on_control: DataListener | None = None,
    ) -> Subscription:
        await self._ensure()
        async with self._lock:
            if self._hub is None:
                hub = _PubSubHub(self._redis_url, f"parley:{self._ns}:pubsub")
                await hub.start()
                self._hub = hub
        subscription = _RedisSubscription(self, self._hub, on_room)
        if on_gateway is not None:
            await subscription._listen(self.gateway_channel(gateway_id), on_gateway)
        if on_control is not None:
            await subscription._listen(self.control_channel(), on_control)
        return subscription

    # --- chat logs ----------------------------------------------------------------------
    async def _declare_log_queue(self, channel: AbstractChannel) -> AbstractQueue:
        # Every declaration must carry the same arguments or the broker refuses it.
        arguments = {
            "x-single-active-consumer": True,
            "x-max-length-bytes": self.log_queue_max_bytes,
            "x-overflow": "reject-publish",
        }
        return await channel.declare_queue(self.log_queue_name(), durable=True, arguments=arguments)

    async def publish_log(self, room_id: str, data: bytes) -> None:
        await self._ensure()
        assert self._log_channel is not None
        message = aio_pika.Message(data, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, headers={"room": room_id})
        try:
            await self._log_channel.default_exchange.publish(message, routing_key=self.log_queue_name())
        except DeliveryError:
            # Nacked: the log queue is at its bound (sinks down or far behind). Chat goes on.
            metrics.LOG_DELIVERIES_DROPPED.inc()
            log.warning("amqp.log_queue_full", room_id=room_id)

    async def consume_logs(self, handler: LogHandler, prefetch: int = 1000) -> LogConsumer:
        channel = await self._consumer_channel(prefetch)
        queue = await self._declare_log_queue(channel)
        consumer = _AmqpLogConsumer(channel, queue, handler)
        await consumer.start()
        self._log_consumers.append(consumer)
        return consumer
