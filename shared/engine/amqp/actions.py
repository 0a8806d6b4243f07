"""RabbitMQ :class:`~shared.engine.actions.Actions`: durable shard queues behind one direct exchange.

Owns, under ``namespace``: the durable direct exchange ``{ns}.actions`` and one durable queue
per shard (quorum or classic, ``shared.engine.amqp.queues``), ``{ns}.actions.{shard}``
(``x-single-active-consumer``), bound by ``str(shard)``. Actions are persistent (unless
``durable_actions=False``; a quorum queue keeps every message on disk anyway) and published with
publisher confirms; actions published in the same loop turn for one shard travel as one broker
message (a msgpack batch, AMQP ``type`` :data:`BATCH_TYPE`). Consumers ack manually, coalesced
per loop turn (``shared.engine.amqp.acks``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time

import aio_pika
import msgpack
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import ChannelInvalidStateError, MessageProcessError
from aiormq.exceptions import AMQPError

from shared import metrics
from shared.engine.actions import Ack, ActionHandler, Actions, Settle, ShardConsumer
from shared.engine.amqp.acks import AckCoalescer
from shared.engine.amqp.connection import CLOSE_TIMEOUT, AmqpConnection
from shared.engine.amqp.queues import QueueType, declare_durable_queue
from shared.engine.coalesce import TurnBatcher
from shared.protocol.envelope import ActionEnvelope

log = structlog.get_logger(__name__)

SETTLE_TIMEOUT = 10.0  # a released shard's batches in flight; past it they may be redelivered

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


class AmqpShardConsumer(ShardConsumer):
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
        self._acks = AckCoalescer(f"shard {shard}")
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


class AmqpActions(Actions):
    def __init__(
        self,
        connection: AmqpConnection,
        namespace: str,
        shards: int,
        prefetch: int,
        durable_actions: bool,
        queue_type: QueueType = QueueType.QUORUM,
    ) -> None:
        self.shards = shards
        self.queue_type = queue_type
        self.prefetch = prefetch
        self.exchange_name = f"{namespace}.actions"
        # Persistent actions survive a broker restart; RabbitMQ confirms them after an fsync, which
        # is most of its CPU per message. Transient ones are confirmed from memory: a router crash
        # still loses nothing (unacked deliveries come back), a broker restart loses those queued.
        # A quorum queue ignores the delivery mode: it writes and replicates every message.
        self._delivery_mode = (
            aio_pika.DeliveryMode.PERSISTENT if durable_actions else aio_pika.DeliveryMode.NOT_PERSISTENT
        )
        self._connection = connection
        self._exchange: AbstractExchange | None = None
        self._consumers: list[AmqpShardConsumer] = []
        self._outgoing: dict[int, TurnBatcher[bytes]] = {}  # shard → its actions of this loop turn

    def queue_name(self, shard: int) -> str:
        return f"{self.exchange_name}.{shard}"

    @property
    def malformed(self) -> int:
        """Malformed actions dropped by these consumers (stopped ones included)."""
        return sum(c.malformed for c in self._consumers)

    async def declare(self, channel: AbstractChannel) -> None:
        """The exchange and every shard's queue, bound (run when the connection opens)."""
        self._exchange = await channel.declare_exchange(self.exchange_name, aio_pika.ExchangeType.DIRECT, durable=True)
        for shard in range(self.shards):
            queue = await self._declare_queue(channel, shard)
            await queue.bind(self._exchange, routing_key=str(shard))

    async def _declare_queue(self, channel: AbstractChannel, shard: int) -> AbstractQueue:
        # Every declaration must carry the same arguments or the broker refuses it.
        return await declare_durable_queue(
            channel, self.queue_name(shard), self.queue_type, {"x-single-active-consumer": True}
        )

    async def publish(self, action: ActionEnvelope) -> None:
        """Actions published in the same event-loop turn for one shard travel as one broker
        message (one frame, one confirm, one ack): under load that multiplies what a gateway
        and a router can move, and an idle system still sends each action at once."""
        await self._connection.ensure_open()
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
            message = aio_pika.Message(batch[0], delivery_mode=self._delivery_mode)
        else:
            message = aio_pika.Message(encode_batch(batch), type=BATCH_TYPE, delivery_mode=self._delivery_mode)
        # Awaits this message's confirm only; aiormq keeps concurrent publishes in flight. A nack
        # is sent again on a renewed channel (``AmqpConnection.publish_confirmed``): the exchange
        # is looked up anew each time, since renewing declares it on the new channel.
        started = time.perf_counter()
        await self._connection.publish_confirmed(lambda: self._exchange_now().publish(message, routing_key=str(shard)))
        metrics.BUS_CONFIRM_SECONDS.observe(time.perf_counter() - started)

    def _exchange_now(self) -> AbstractExchange:
        assert self._exchange is not None
        return self._exchange

    async def consume_shard(self, shard: int, handler: ActionHandler) -> ShardConsumer:
        # A channel per shard: its prefetch window and its close (requeue) are the shard's own.
        channel, queue = await self._connection.consumer_queue(
            self.prefetch, functools.partial(self._declare_queue, shard=shard)
        )
        consumer = AmqpShardConsumer(shard, channel, queue, handler)
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    async def close(self) -> None:
        """Stop every consumer (the bus is closing)."""
        for consumer in self._consumers:
            await consumer.stop()

    async def delete(self, channel: AbstractChannel) -> None:
        """Delete the shard queues and the exchange (tests)."""
        for shard in range(self.shards):
            await channel.queue_delete(self.queue_name(shard))
        await channel.exchange_delete(self.exchange_name)
