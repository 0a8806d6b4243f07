"""RabbitMQ :class:`~shared.engine.review_rpc.ReviewRpc`: request/reply over a competing-consumer queue.

Owns, under ``namespace``: the durable queue ``{ns}.reviews`` (quorum or classic,
``shared.engine.amqp.queues``; RabbitMQ 4 refuses transient non-exclusive queues) that every
reviewer consumes (competing consumers, prefetch = its concurrency); each request carries a
per-message ``expiration`` equal to the caller's timeout, so a request nobody took in time dies
in the queue. Replies go to the caller's exclusive ``{ns}.review-replies.{random}`` queue (exclusive
queues may stay transient), matched by ``correlation_id``. Requests and replies are transient and
unconfirmed: a lost one is a timeout, and the caller falls back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import ChannelInvalidStateError, MessageProcessError
from aiormq.exceptions import AMQPError

from shared.engine.amqp.connection import CLOSE_TIMEOUT, AmqpConnection
from shared.engine.amqp.queues import QueueType, declare_durable_queue
from shared.engine.review_rpc import ReviewHandler, ReviewRpc, ReviewServer

log = structlog.get_logger(__name__)


class AmqpReviewServer(ReviewServer):
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

    async def stop(self) -> None:
        if self._tag is not None and not self._channel.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._queue.cancel(self._tag), CLOSE_TIMEOUT)
            self._tag = None
        if self._inflight:  # let reviews in progress answer (each is bounded by its budget)
            await asyncio.wait(set(self._inflight), timeout=CLOSE_TIMEOUT)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._channel.close(), CLOSE_TIMEOUT)


class AmqpReviewRpc(ReviewRpc):
    def __init__(self, connection: AmqpConnection, namespace: str, queue_type: QueueType = QueueType.QUORUM) -> None:
        self.queue_name = f"{namespace}.reviews"
        self.queue_type = queue_type
        self._connection = connection
        self._servers: list[AmqpReviewServer] = []
        self._channel: AbstractChannel | None = None
        self._reply_queue = f"{namespace}.review-replies.{secrets.token_hex(6)}"
        self._calls: dict[str, asyncio.Future[bytes | None]] = {}
        self._ids = itertools.count()
        self._lock = asyncio.Lock()

    async def declare(self, channel: AbstractChannel) -> None:
        """Declared by every process when it connects, so a mismatch stops it at start."""
        await self._declare_queue(channel)

    async def _declare_queue(self, channel: AbstractChannel) -> AbstractQueue:
        # Durable queue, transient requests: in-flight reviews are worth nothing after a broker
        # restart (callers fell back), but RabbitMQ 4 has no transient shared queues.
        return await declare_durable_queue(
            channel,
            self.queue_name,
            self.queue_type,
            hint="It holds only review requests in flight (earlier parley versions declared it transient): "
            "deleting it loses nothing.",
        )

    async def _caller_channel(self) -> AbstractChannel:
        """The caller side, set up on first use (routers without reviewed rooms never need it)."""
        async with self._lock:
            if self._channel is None:
                channel = await self._connection.channel()
                await self._declare_queue(channel)
                # Client-named (not amq.gen-*) so the robust channel can re-declare it after a reconnect.
                replies = await channel.declare_queue(self._reply_queue, exclusive=True, auto_delete=True)
                await replies.consume(self._on_reply, no_ack=True)
                self._channel = channel
            return self._channel

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        call = self._calls.get(message.correlation_id or "")
        if call is not None and not call.done():
            call.set_result(message.body)
        # else: the caller already timed out and fell back; the late answer is dropped.

    async def request(self, data: bytes, timeout: float) -> bytes | None:
        call_id = f"{next(self._ids):x}"
        call: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = call
        try:
            async with asyncio.timeout(timeout):
                channel = await self._caller_channel()
                message = aio_pika.Message(
                    data,
                    correlation_id=call_id,
                    reply_to=self._reply_queue,
                    expiration=timeout,  # dies in the queue once the caller has given up on it
                    delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
                )
                await channel.default_exchange.publish(message, routing_key=self.queue_name)
                return await call
        except Exception as exc:  # noqa: BLE001 - timeout or broker trouble: the caller falls back
            if not isinstance(exc, TimeoutError):
                log.warning("amqp.review_request_failed", error_type=type(exc).__name__)
            return None
        finally:
            del self._calls[call_id]

    async def serve(self, handler: ReviewHandler, concurrency: int) -> ReviewServer:
        server = AmqpReviewServer(*await self._connection.consumer_queue(concurrency, self._declare_queue), handler)
        await server.start()
        self._servers.append(server)
        return server

    async def close(self) -> None:
        """Stop every server, and let every caller still waiting fall back now (the bus is closing)."""
        for server in self._servers:
            await server.stop()
        for call in self._calls.values():
            if not call.done():
                call.set_result(None)

    async def delete(self, channel: AbstractChannel) -> None:
        """Delete the request queue (tests)."""
        await channel.queue_delete(self.queue_name)
