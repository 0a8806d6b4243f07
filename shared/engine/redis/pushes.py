"""The subscriber's connections: what a :class:`~shared.engine.redis.subscriber.PubSubHub` link
sends (SUBSCRIBE …) and how the messages come back.

:class:`PushConnection`, for plain TCP and unix sockets: an ``asyncio.Protocol`` feeding a
``hiredis.Reader`` that hands every reply to the link's callback as it is parsed, inside
``data_received``, so a message costs a parse and a call, with no await, task or timer of its
own. redis-py's connection (:class:`RedisPyWire`) awaits ``read_response`` once per message
(about a tenth of a gateway's CPU at 100 rooms × 20 in ``bench/README.md``); it stays for what
the lean one does not do (TLS).

Both speak RESP2 (pub/sub messages are arrays there, ``message``/``smessage``), name the
connection (``CLIENT SETNAME``, so an operator, or a fault test, can find and kill it), and with
Sentinel ask where the master is on every connect.

Must not: know channels or listeners (the hub does), or send anything but pub/sub commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

import hiredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.engine.redis.resp import Endpoint, reply_reader

OnReply = Callable[[Any], None]


class Wire(Protocol):
    async def connect(self) -> None:
        """(Re)connect; replies from then on go to the ``on_reply`` given to ``run``."""

    async def send(self, *command: Any) -> None:
        """Write one command (its reply arrives through ``on_reply``). Never raises: on a
        connection being lost the reader reconnects and subscribes again."""

    async def run(self, on_reply: OnReply) -> None:
        """Hand every reply to ``on_reply`` until the connection is lost, then raise why."""

    async def disconnect(self) -> None: ...


class _Pushes(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = reply_reader()
        self.transport: asyncio.Transport | None = None
        self.on_reply: OnReply | None = None
        self.handshake: list[Any] = []  # replies before on_reply is set
        self.handshake_done: asyncio.Event = asyncio.Event()
        self.handshake_count = 0
        self.early: list[Any] = []
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except InvalidResponse as error:  # the stream is unreadable from here on
                self.fail(RedisConnectionError(f"Redis protocol error: {error}"))
                return
            if reply is False:
                return
            if self.on_reply is not None:
                self.on_reply(reply)
            elif len(self.handshake) < self.handshake_count:
                self.handshake.append(reply)
                if len(self.handshake) == self.handshake_count:
                    self.handshake_done.set()
            else:  # a reply before ``run`` took over (a SUBSCRIBE sent right after connect)
                self.early.append(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"Connection closed by server: {exc}" if exc else "Connection closed by server"))

    def fail(self, error: Exception) -> None:
        if not self.lost.done():
            self.lost.set_exception(error)
        self.handshake_done.set()
        if self.transport is not None:
            self.transport.abort()


class PushConnection:
    """A lean subscriber connection (see the module docstring)."""

    def __init__(
        self,
        endpoint: Endpoint,
        client_name: str,
        resolve: Callable[[], Awaitable[tuple[str, int]]] | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        self._endpoint = endpoint
        self._client_name = client_name
        self._resolve = resolve
        self._connect_timeout = connect_timeout
        self._protocol: _Pushes | None = None

    async def connect(self) -> None:
        await self.disconnect()
        loop = asyncio.get_running_loop()
        e = self._endpoint
        host, port = await self._resolve() if self._resolve is not None else (e.host, e.port)
        handshake = [*e.auth(), ("CLIENT", "SETNAME", self._client_name)]
        try:
            async with asyncio.timeout(self._connect_timeout):
                if e.path:
                    _, protocol = await loop.create_unix_connection(_Pushes, e.path)
                else:
                    _, protocol = await loop.create_connection(_Pushes, host, port)
                self._protocol = protocol
                protocol.handshake_count = len(handshake)
                assert protocol.transport is not None
                protocol.transport.write(b"".join(hiredis.pack_command(command) for command in handshake))
                await protocol.handshake_done.wait()
        except (OSError, TimeoutError) as error:
            await self.disconnect()
            where = e.path or f"{host}:{port}"
            raise RedisConnectionError(f"Error connecting to Redis at {where}: {error}") from error
        if protocol.lost.done():
            protocol.lost.result()  # raises why
        for reply in protocol.handshake:
            if isinstance(reply, Exception):
                await self.disconnect()
                raise RedisConnectionError(f"Redis refused the subscriber connection: {reply}")

    async def send(self, *command: Any) -> None:
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None and not protocol.lost.done():
            protocol.transport.write(hiredis.pack_command(command))
        # else the reader is reconnecting, and subscribes again from the hub's table

    async def run(self, on_reply: OnReply) -> None:
        protocol = self._protocol
        if protocol is None:
            raise RedisConnectionError("the subscriber connection is not open")
        early, protocol.early = protocol.early, []
        for reply in early:
            on_reply(reply)
        protocol.on_reply = on_reply
        await asyncio.shield(protocol.lost)  # raises why it was lost
        raise RedisConnectionError("Connection closed")  # pragma: no cover - lost only ever fails

    async def disconnect(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.fail(RedisConnectionError("Connection closed by client"))
            with contextlib.suppress(Exception):
                await protocol.lost


class RedisPyWire:
    """redis-py's connection as a :class:`Wire` (TLS, and pools of a class of their own)."""

    def __init__(self, connection: AbstractConnection) -> None:
        self._conn = connection

    async def connect(self) -> None:
        await self._conn.connect()

    async def send(self, *command: Any) -> None:
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
            # On failure the reader notices, reconnects and subscribes again.
            await self._conn.send_command(*command, check_health=False)

    async def run(self, on_reply: OnReply) -> None:
        while True:
            # math.inf: block without a timeout (redis-py's opt-in); no polling, no per-read timer.
            # push_request: redis-py 8 speaks RESP3, where pub/sub messages are push frames
            # that the parser otherwise diverts to a push handler instead of returning.
            try:
                reply = await self._conn.read_response(timeout=math.inf, disconnect_on_error=False, push_request=True)
            except ResponseError as error:  # an error reply (MOVED …) is a reply, as on the lean wire
                reply = error
            on_reply(reply)

    async def disconnect(self) -> None:
        with contextlib.suppress(Exception):
            await self._conn.disconnect(nowait=True)
