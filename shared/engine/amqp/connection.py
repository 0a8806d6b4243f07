"""The one RabbitMQ connection an ``AmqpRedisBus`` shares among its paths.

Owns the robust connection (to the first of ``PARLEY_AMQP_URL``'s nodes that answers, failing
over between them: ``shared.engine.amqp.failover``), its publisher channel (publisher confirms; an unroutable publish
raises) and the open/close lifecycle: opened on first use, declarations run once on the
publisher channel, refused after close. Consumers get channels of their own from it.

A nacked publish was not enqueued, so sending it again duplicates nothing. RabbitMQ (3.10 here)
nacks every publish on a confirming channel opened while a quorum queue had no leader (a node
was lost and the robust connection reopened its channels on another node before the queues
elected new leaders), for as long as that channel lives; a new channel publishes at once.
:meth:`AmqpConnection.publish_confirmed` therefore renews the publisher channel on a nack and
sends again, for about 3 s, before the nack reaches the caller. The replaced channel is closed
only later, so confirms still in flight on it arrive (closing it at once would fail publishes
the broker did take, and their retry would duplicate them).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection
from aiormq.exceptions import DeliveryError, PublishError

from shared.engine.amqp.failover import connect_nodes, node_urls

log = structlog.get_logger(__name__)

# Bounds for the waits that must never hang close()/stop() on a dead broker.
CLOSE_TIMEOUT = 5.0
PUBLISH_ATTEMPTS = 12  # a nacked publish is sent again on a renewed channel, RETRY_DELAY apart (~3 s)
RETRY_DELAY = 0.25
RENEW_MIN_INTERVAL = 0.5  # at most two new publisher channels a second (a full log queue nacks too)
RETIRED_CHANNEL_LINGER = 30.0  # a replaced publisher channel is closed this much later

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
        self._renewed_at = 0.0
        self._retired: set[asyncio.Task[None]] = set()

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

    async def publish_confirmed(
        self, publish: Callable[[], Awaitable[object]], attempts: int = PUBLISH_ATTEMPTS, delay: float = RETRY_DELAY
    ) -> None:
        """Run ``publish`` (a publish through :attr:`publisher`, looked up anew on each call)
        until the broker confirms it: a nack renews the publisher channel and sends again after
        ``delay``, up to ``attempts`` times; the last nack is raised. A returned (unroutable)
        message raises at once."""
        for attempt in range(attempts):
            channel = self.publisher
            try:
                await publish()
                return
            except PublishError:
                raise
            except DeliveryError:
                if attempt == attempts - 1:
                    raise
                await self.renew_publisher(channel)
                await asyncio.sleep(delay)

    async def renew_publisher(self, failed: AbstractChannel) -> None:
        """A new confirming publisher channel in place of ``failed``, declarations run again (at
        most once per :data:`RENEW_MIN_INTERVAL`; a no-op when ``failed`` was replaced already)."""
        async with self._lock:
            if self._closed or self._publisher is not failed or self._connection is None:
                return
            if time.monotonic() - self._renewed_at < RENEW_MIN_INTERVAL:
                return
            self._renewed_at = time.monotonic()
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            for declare in self._declares:
                await declare(channel)
            self._publisher = channel
        log.warning("amqp.publisher_channel_renewed", reason="nacked publish")
        retire = asyncio.create_task(self._retire(failed))
        self._retired.add(retire)
        retire.add_done_callback(self._retired.discard)

    @staticmethod
    async def _retire(channel: AbstractChannel) -> None:
        await asyncio.sleep(RETIRED_CHANNEL_LINGER)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(channel.close(), CLOSE_TIMEOUT)

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
        for retire in list(self._retired):
            retire.cancel()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._connection.close(), CLOSE_TIMEOUT)
