"""RabbitMQ :class:`~shared.engine.logstream.LogStream`: one bounded durable queue, one active consumer.

Owns, under ``namespace``: the durable queue ``{ns}.logs`` (default exchange; quorum or classic,
``shared.engine.amqp.queues``), single-active-consumer so one logger sink at a time drains it in
order (others are hot standbys), bounded by ``x-max-length-bytes`` with ``x-overflow: reject-
publish``: when sinks fall that far behind the broker nacks new deliveries and ``publish``
counts and drops them, so chat never waits (a quorum queue refuses once it is at the bound, so
it may overshoot it by one delivery; a classic one refuses the delivery that would cross it).
Deliveries are persistent and confirmed; the room id travels in the ``room`` header.
"""

from __future__ import annotations

import asyncio
import contextlib

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import DeliveryError
from aiormq.abc import FieldTable

from shared import metrics
from shared.engine.amqp.acks import AckCoalescer
from shared.engine.amqp.connection import CLOSE_TIMEOUT, AmqpConnection
from shared.engine.amqp.queues import QueueType, declare_durable_queue
from shared.engine.logstream import LogConsumer, LogHandler, LogStream

log = structlog.get_logger(__name__)

DEFAULT_MAX_BYTES = 1 << 30


class AmqpLogConsumer(LogConsumer):
    """Hands log deliveries to the handler one at a time in queue order; acks come from the
    handler whenever the sink has written them (in any order)."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue, handler: LogHandler) -> None:
        self._channel = channel
        self._queue = queue
        self._handler = handler
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._tag: str | None = None
        self._pump: asyncio.Task[None] | None = None
        self._acks = AckCoalescer("logs")

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


class AmqpLogStream(LogStream):
    def __init__(
        self,
        connection: AmqpConnection,
        namespace: str,
        max_bytes: int = DEFAULT_MAX_BYTES,
        queue_type: QueueType = QueueType.QUORUM,
    ) -> None:
        self.queue_name = f"{namespace}.logs"
        self.queue_type = queue_type
        self.max_bytes = max_bytes  # x-max-length-bytes of the queue; all processes must agree
        self._connection = connection
        self._consumers: list[AmqpLogConsumer] = []

    async def declare(self, channel: AbstractChannel) -> None:
        """Declared by every process when it connects, so a delivery published before any sink
        started is kept."""
        await self._declare_queue(channel)

    async def _declare_queue(self, channel: AbstractChannel) -> AbstractQueue:
        # Every declaration must carry the same arguments or the broker refuses it.
        arguments: FieldTable = {
            "x-single-active-consumer": True,
            "x-max-length-bytes": self.max_bytes,
            "x-overflow": "reject-publish",
        }
        return await declare_durable_queue(channel, self.queue_name, self.queue_type, arguments)

    async def publish(self, room_id: str, data: bytes) -> None:
        await self._connection.ensure_open()
        message = aio_pika.Message(data, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, headers={"room": room_id})
        try:
            # Sent once more, at once, on a renewed channel if nacked (``AmqpConnection.publish_confirmed``):
            # a full queue nacks too, and the router waits for this publish before its acks.
            await self._connection.publish_confirmed(
                lambda: self._connection.publisher.default_exchange.publish(message, routing_key=self.queue_name),
                attempts=2,
                delay=0,
            )
        except DeliveryError:
            # Nacked twice: the log queue is at its bound (sinks down or far behind). Chat goes on.
            metrics.LOG_DELIVERIES_DROPPED.inc()
            log.warning("amqp.log_queue_full", room_id=room_id)

    async def consume(self, handler: LogHandler, prefetch: int = 1000) -> LogConsumer:
        consumer = AmqpLogConsumer(*await self._connection.consumer_queue(prefetch, self._declare_queue), handler)
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    async def close(self) -> None:
        """Stop every consumer (the bus is closing)."""
        for consumer in self._consumers:
            await consumer.stop()

    async def delete(self, channel: AbstractChannel) -> None:
        """Delete the queue (tests)."""
        await channel.queue_delete(self.queue_name)
