"""``PubSubHub``: a process's Redis subscriptions, over one subscriber connection per server.

One server (or Sentinel's master): one connection, ``SUBSCRIBE``. Redis Cluster: sharded pub/sub
(``SSUBSCRIBE``, Redis 7), where a channel lives on the master of its hash slot, so the hub keeps
one connection per master that holds a subscribed channel (a :class:`_Link`) and puts each channel
on its slot's link. Publishes then reach one node, not every node of the cluster.

Each link has one reader task that watches its connection (``shared.engine.redis.pushes``: a
hiredis-fed protocol that dispatches each message as it is parsed, or redis-py's connection for
TLS). We drive raw connections rather than redis-py's PubSub so reconnects are explicit (logged,
re-subscribed from our own channel table) and the per-message path is just parse + dict lookup. A lost link
reconnects with a growing delay; under Cluster it first asks for the slot map again (the node may
have failed over) and moves its channels to the links that own them now. A node that gives up a
slot tells us with ``sunsubscribe``; those channels move too. Either way ``on_resubscribed``
listeners hear of it before the new subscription delivers (gap fill, ``gateway/gapfill.py``).

Must not: publish, or know which channels mean what (``shared.engine.redis.fanout`` names them).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Coroutine
from typing import Any

import structlog
from redis.asyncio import ConnectionPool, RedisCluster
from redis.crc import key_slot
from redis.exceptions import MovedError

from shared.engine.fanout import DataListener, ResubscribedListener
from shared.engine.redis import connect
from shared.engine.redis.connect import RedisTarget
from shared.engine.redis.pipeline import pool_endpoint
from shared.engine.redis.pushes import PushConnection, RedisPyWire, Wire

log = structlog.get_logger(__name__)

SUBSCRIBE_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0  # bounds a reconnect attempt, which holds the subscription lock
RECONNECT_MAX_DELAY = 2.0
Node = tuple[str, int]
_SINGLE: Node = ("", 0)  # the one link without Cluster


class _Link:
    """One subscriber connection and the channels subscribed (or to subscribe) on it."""

    def __init__(self, hub: PubSubHub, node: Node, wire: Wire, pool: ConnectionPool) -> None:
        self.hub = hub
        self.node = node
        self.wire = wire
        self.pool = pool  # the wire's settings (and, with Sentinel, its master resolver); closed with it
        self.channels: set[bytes] = set()
        self.up = False  # connected and every channel in ``channels`` (re)subscribed
        # sharded: channels whose SSUBSCRIBE is not confirmed yet, in the order sent, so an
        # error reply (MOVED: the slot is elsewhere now) is matched to its channel
        self.unconfirmed: deque[bytes] = deque()
        self.reconnects = 0
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.connect()
        self.reader = asyncio.create_task(self._read_forever(), name=f"redis-pubsub-reader-{self.node[1]}")

    async def connect(self) -> None:
        """(Re)connect and subscribe every channel of the link; the hub's lock is held."""
        await self.wire.connect()
        self.unconfirmed.clear()
        self.up = True
        channels = list(self.channels)
        for channel in channels:
            self.hub._pending(channel)
        await self.subscribe(channels)
        if self.reconnects:
            log.info("redis.pubsub_resubscribed", channels=len(channels), reconnects=self.reconnects)
            self.hub._tell_resubscribed(channels)

    async def subscribe(self, channels: list[bytes]) -> None:
        """Subscribe ``channels`` (confirmations and errors come back through the reader). On
        failure the reader notices, reconnects and subscribes from ``channels``."""
        if not self.up or not channels:
            return
        if not self.hub.sharded:
            await self.wire.send("SUBSCRIBE", *channels)
            return
        for channel in channels:  # one command each: one SSUBSCRIBE's channels must share a slot
            self.unconfirmed.append(channel)
            await self.wire.send("SSUBSCRIBE", channel)

    async def unsubscribe(self, channel: bytes) -> None:
        if self.up:
            await self.wire.send("SUNSUBSCRIBE" if self.hub.sharded else "UNSUBSCRIBE", channel)

    def confirmed(self, channel: bytes) -> None:
        if self.unconfirmed and self.unconfirmed[0] == channel:
            self.unconfirmed.popleft()
        else:
            with contextlib.suppress(ValueError):
                self.unconfirmed.remove(channel)

    def refused(self) -> bytes | None:
        """The channel an error reply answers (sharded: the oldest unconfirmed SSUBSCRIBE)."""
        return self.unconfirmed.popleft() if self.unconfirmed else None

    def _on_reply(self, reply: Any) -> None:
        self.hub._dispatch(self, reply)

    async def _read_forever(self) -> None:
        delay = 0.05
        while True:
            try:
                if not self.up:
                    async with self.hub._lock:
                        if await self.hub._rehome(self):
                            return  # this node holds nothing of ours any more
                        await self.connect()
                    delay = 0.05
                await self.wire.run(self._on_reply)  # returns only by raising why it was lost
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                # Whatever broke, the reader must outlive it: reconnect and re-subscribe.
                self.up = False
                self.reconnects += 1
                self.hub.reconnects += 1
                log.warning("redis.pubsub_lost", error_type=type(exc).__name__, error=str(exc), retry_in=delay)
                await self.wire.disconnect()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY)

    async def close(self) -> None:
        if self.reader is not None and self.reader is not asyncio.current_task():
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
        self.reader = None
        self.up = False
        await self.wire.disconnect()
        with contextlib.suppress(Exception):
            await self.pool.aclose()


class PubSubHub:
    """Every subscription of a bus: channel → listeners, over one :class:`_Link` per server."""

    def __init__(self, redis: RedisTarget | str, client_name: str, cluster: RedisCluster | None = None) -> None:
        """``cluster``: the process's cluster client, whose slot map says where a channel lives
        (sharded pub/sub); None for one server."""
        self._target = RedisTarget.of(redis)
        self._cluster = cluster
        self.sharded = cluster is not None
        self._message_kind = b"smessage" if cluster is not None else b"message"
        self._confirm_kind = b"ssubscribe" if cluster is not None else b"subscribe"
        # socket_timeout stays None: the reader blocks until a message or a disconnect.
        # socket_connect_timeout bounds a reconnect attempt, which holds the subscription lock.
        self._client_name = client_name
        self._options: dict[str, Any] = {
            "client_name": client_name,
            "socket_keepalive": True,
            "socket_connect_timeout": CONNECT_TIMEOUT,
        }
        self._links: dict[Node, _Link] = {}
        self._link_of: dict[bytes, _Link] = {}
        self._listeners: dict[bytes, list[DataListener]] = {}
        self._confirmed: dict[bytes, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()  # serializes (re)subscription against the channel table
        self.reconnects = 0
        self.on_resubscribed: list[ResubscribedListener] = []  # told on every reconnect
        self._moves: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._cluster is None:
            async with self._lock:
                await self._open(_SINGLE)
        else:
            await self._cluster.initialize()

    async def close(self) -> None:
        for move in list(self._moves):
            move.cancel()
        for link in list(self._links.values()):
            await link.close()
        self._links.clear()
        for fut in self._confirmed.values():
            if not fut.done():
                fut.set_result(None)

    def _node_of(self, channel: bytes) -> Node:
        if self._cluster is None:
            return _SINGLE
        node = self._cluster.nodes_manager.get_node_from_slot(key_slot(channel))
        return node.host, int(node.port)

    async def _open(self, node: Node) -> _Link:
        """The link to ``node``, connected and reading (made on first use); the lock is held."""
        link = self._links.get(node)
        if link is not None:
            return link
        if node == _SINGLE:
            # With Sentinel each (re)connect asks the sentinels where the master is now.
            pool = connect.connection_pool(self._target, **self._options)
        else:
            pool = connect.node_pool(self._target, *node, **self._options)
        endpoint = pool_endpoint(pool)
        wire: Wire = (
            PushConnection(endpoint, self._client_name, connect.pool_master_resolver(pool), CONNECT_TIMEOUT)
            if endpoint is not None
            else RedisPyWire(pool.make_connection())  # TLS
        )
        link = self._links[node] = _Link(self, node, wire, pool)
        try:
            await link.start()
        except BaseException:
            del self._links[node]
            await link.close()  # its pool too
            raise
        return link

    def _pending(self, channel: bytes) -> asyncio.Future[None]:
        fut = self._confirmed.get(channel)
        if fut is None or fut.done():
            fut = asyncio.get_running_loop().create_future()
            self._confirmed[channel] = fut
        return fut

    def _tell_resubscribed(self, channels: list[bytes]) -> None:
        """Called by a reader before it reads from its new connection, so listeners hear of the
        reconnect before any of its messages."""
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

    async def _rehome(self, link: _Link) -> bool:
        """Under Cluster, before a lost link reconnects: ask for the slot map again and move each
        of its channels to the link of the node that owns it now. True when ``link`` keeps none
        (it is then closed and forgotten). The lock is held."""
        if self._cluster is None:
            return False
        with contextlib.suppress(Exception):  # a failed refresh keeps the old map; we retry later
            await self._cluster.nodes_manager.initialize()
        moving = [channel for channel in link.channels if self._node_of(channel) != link.node]
        if moving:
            await self._move(moving)
        if link.channels:
            return False
        self._links.pop(link.node, None)
        await link.close()
        return True

    async def _move(self, channels: list[bytes], node: Node | None = None) -> None:
        """Subscribe ``channels`` on the links of their nodes now, or of ``node`` (a MOVED
        reply's); the lock is held."""
        targets: dict[Node, list[bytes]] = {}
        for channel in channels:
            old = self._link_of.pop(channel, None)
            if old is not None:
                old.channels.discard(channel)
            if channel in self._listeners:
                targets.setdefault(node or self._node_of(channel), []).append(channel)
        for node, moved in targets.items():
            try:
                link = await self._open(node)
            except Exception as error:  # noqa: BLE001 - stays unsubscribed; the next reconnect retries
                log.warning("redis.pubsub_move_failed", node=f"{node[0]}:{node[1]}", error=str(error))
                continue
            for channel in moved:
                link.channels.add(channel)
                self._link_of[channel] = link
                self._pending(channel)
            await link.subscribe(moved)
            self._tell_resubscribed(moved)  # as after a reconnect: a gap is possible

    def _dispatch(self, link: _Link, reply: Any) -> None:
        if isinstance(reply, Exception):
            self._refused(link, reply)
            return
        if not isinstance(reply, list) or len(reply) < 3:
            return
        kind = reply[0]
        if kind == self._message_kind:
            for listener in tuple(self._listeners.get(reply[1], ())):
                try:
                    listener(reply[2])
                except Exception:
                    log.exception("redis.listener_failed", channel=reply[1].decode(errors="replace"))
        elif kind == self._confirm_kind:
            link.confirmed(reply[1])
            fut = self._confirmed.get(reply[1])
            if fut is not None and not fut.done():
                fut.set_result(None)
        elif kind == b"sunsubscribe" and reply[1] in link.channels:
            # Not asked for by us: the slot moved to another node (resharding, failover).
            channel = reply[1]
            log.info("redis.pubsub_slot_moved", channel=channel.decode(errors="replace"))
            self._spawn(self._moved(channel))

    def _refused(self, link: _Link, error: Exception) -> None:
        channel = link.refused()
        where = "" if channel is None else channel.decode(errors="replace")
        if channel is not None and isinstance(error, MovedError) and channel in link.channels:
            # our slot map was older than the cluster's (a slot moved): subscribe where it says
            log.info("redis.pubsub_subscribe_moved", channel=where, to=f"{error.host}:{error.port}")
            self._spawn(self._moved(channel, (error.host, int(error.port))))
        else:
            log.warning("redis.pubsub_refused", channel=where, error=str(error))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` (a move, from a reader's callback) held until done, cancelled on close."""
        task = asyncio.get_running_loop().create_task(work)
        self._moves.add(task)
        task.add_done_callback(self._moves.discard)

    async def _moved(self, channel: bytes, node: Node | None = None) -> None:
        async with self._lock:
            if self._cluster is not None:
                with contextlib.suppress(Exception):
                    await self._cluster.nodes_manager.initialize()
            await self._move([channel], node)

    async def add(self, channel: bytes, listener: DataListener) -> None:
        """Returns once Redis confirmed the subscription, so a publish right after is seen."""
        fut: asyncio.Future[None] | None
        async with self._lock:
            listeners = self._listeners.setdefault(channel, [])
            listeners.append(listener)
            if len(listeners) == 1:
                fut = self._pending(channel)
                try:
                    link = await self._open(self._node_of(channel))
                except Exception:
                    self._listeners.pop(channel, None)
                    raise
                link.channels.add(channel)
                self._link_of[channel] = link
                await link.subscribe([channel])
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
            link = self._link_of.pop(channel, None)
            if link is not None:
                link.channels.discard(channel)
                await link.unsubscribe(channel)
