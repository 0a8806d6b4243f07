"""The one RabbitMQ connection an ``AmqpRedisBus`` shares among its paths.

Owns the robust connection (to the first of ``PARLEY_AMQP_URL``'s nodes that answers, failing
over between them: ``shared.engine.amqp.failover``), its publisher channel (publisher confirms; an unroutable publish
raises) and the open/close lifecycle: opened on first use, declarations run once on the
publisher channel, refused after close. Consumers get channels of their own from it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection

from shared.engine.amqp.failover import connect_nodes, node_urls

# Bounds for the waits that must never hang close()/stop() on a dead broker.
CLOSE_TIMEOUT = 5.0

Declare = Callable[[AbstractChannel], Awaitable[None]]


class AmqpConnection:
    def __init__(self, url: str) -> None:
        self.url = url  # one node URL, or several comma-separated
        node_urls(url)  # an empty PARLEY_AMQP_URL fails here, not on first use
        self._declares: list[Declare] = []
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._lock = asyncio.Lock()
        self._opened = False
        self._closed = False

    def on_open(self, declare: Declare) -> None:
        """Run ``declare(publisher channel)`` when the connection opens, after those given before."""
        self._declares.append(declare)

    async def open(self) -> None:
        """Connect and declare what is needed. Idempotent; raises RuntimeError once closed."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("bus is closed")
            if self._opened:
                return
            self._connection = await connect_nodes(self.url)
            # on_return_raises: an action routed to no queue must fail loudly, not vanish.
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            for declare in self._declares:
                await declare(channel)
            self._publisher = channel
            self._opened = True

    async def ensure_open(self) -> None:
        if not self._opened:
            await self.open()

    @property
    def publisher(self) -> AbstractChannel:
        """The confirming channel every publish that needs a confirm goes through (after open)."""
        assert self._publisher is not None, "open() first"
        return self._publisher

    async def channel(self) -> AbstractChannel:
        """A new channel without publisher confirms."""
        await self.ensure_open()
        assert self._connection is not None
        return await self._connection.channel(publisher_confirms=False)

    async def consumer_channel(self, prefetch: int) -> AbstractChannel:
        """A consumer's own channel: its prefetch window, and closing it requeues its unacked."""
        channel = await self.channel()
        await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def consumer_queue(
        self, prefetch: int, declare: Callable[[AbstractChannel], Awaitable[AbstractQueue]]
    ) -> tuple[AbstractChannel, AbstractQueue]:
        """A consumer's own channel (see :meth:`consumer_channel`) and its queue, declared there."""
        channel = await self.consumer_channel(prefetch)
        return channel, await declare(channel)

    async def close(self, stop_users: Callable[[], Awaitable[None]]) -> None:
        """Refuse ``open`` from now on, run ``stop_users`` (the consumers and servers on this
        connection), then close it. Only the first call does anything."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
        await stop_users()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._connection.close(), CLOSE_TIMEOUT)
