"""One lean RESP2 connection for a process's ordered pipeline (``shared/engine/redis/pipeline.py``).

Why not redis-py's ``Pipeline``: that pipeline carries a router's every message (history append,
room publish, done marks), and redis-py spends about 40–50 µs of client CPU per command when a
round trip holds 3 commands and about 13 µs at 30 (a Pipeline object, a pooled connection, an
awaited ``read_response`` per reply). Writing hiredis-packed commands straight to an
``asyncio.Protocol`` and taking the replies off a ``hiredis.Reader`` as they arrive costs about
12 and 2 µs (``bench/redis_pipeline.py``). The pipeline runs one flush at a time, in order, so one
connection whose replies are matched first-in first-out is all it needs.

Replies are hiredis's raw RESP2 values (bytes, int, list, None); error replies become redis-py's
own exception classes (``NoScriptError``, ``ResponseError`` …), returned in place like a pipeline
with ``raise_on_error=False``. A lost connection or a round trip over ``timeout`` fails what is in
flight with redis-py's ``ConnectionError``/``TimeoutError`` and closes the socket (replies after a
timeout could no longer be matched); the next call connects again.

With a ``resolve`` callable (Sentinel: ``shared.engine.redis.connect.master_resolver``) the
address is asked anew on every connect, and a READONLY reply (a master demoted by a failover)
closes the connection too: those replies become ``ConnectionError`` like redis-py's sentinel
connections raise, and the next call connects to the master the sentinels name now.

Must not: carry pub/sub or blocking commands (a reply per command is assumed), or know any key.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import hiredis
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and as whom to connect: TCP ``host:port`` or a unix socket ``path``."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    timeout: float = 5.0  # connect, and each round trip

    def auth(self) -> list[tuple[Any, ...]]:
        """The AUTH a new connection sends first, if these credentials need one."""
        if self.password is None:
            return []
        return [("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)]


def reply_reader() -> hiredis.Reader:
    """A hiredis reader whose protocol errors and error replies are redis-py's exception classes."""
    return hiredis.Reader(protocolError=InvalidResponse, replyError=BaseParser.parse_error)


class _Replies(asyncio.Protocol):
    """Feeds a socket's bytes to a hiredis reader and completes the waiting round trips in order."""

    def __init__(self) -> None:
        self.reader = reply_reader()
        self.waiting: deque[tuple[asyncio.Future[list[Any]], int, list[Any]]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while self.waiting:
            future, count, replies = self.waiting[0]
            while len(replies) < count:
                try:
                    reply = self.reader.gets()
                except InvalidResponse as error:  # the stream is unreadable from here on
                    self.fail(RedisConnectionError(f"Redis protocol error: {error}"))
                    return
                if reply is False:
                    return  # the rest of this round trip has not arrived yet
                replies.append(reply)
            self.waiting.popleft()
            if not future.done():
                future.set_result(replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"Connection closed by server: {exc}" if exc else "Connection closed"))

    def fail(self, error: Exception) -> None:
        self.lost = error
        while self.waiting:
            future, _, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.abort()


class RespConnection:
    def __init__(self, endpoint: Endpoint, resolve: Callable[[], Awaitable[tuple[str, int]]] | None = None) -> None:
        """``resolve``: where to connect, asked on every connect (``endpoint``'s host and port are
        then unused)."""
        self.endpoint = endpoint
        self._resolve = resolve
        self._protocol: _Replies | None = None
        self._connecting = asyncio.Lock()

    async def execute(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send ``commands`` as one write; their replies in order (error replies as exceptions)."""
        protocol = await self._connected()
        assert protocol.transport is not None
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        protocol.waiting.append((future, len(commands), []))
        protocol.transport.write(b"".join([hiredis.pack_command(command) for command in commands]))
        try:
            async with asyncio.timeout(self.endpoint.timeout):
                replies = await future
        except TimeoutError:
            timed_out = RedisTimeoutError(f"Redis did not answer in {self.endpoint.timeout} s")
            protocol.fail(timed_out)  # what is in flight with it, too
            raise timed_out from None
        if any(isinstance(reply, ReadOnlyError) for reply in replies):
            return _demoted(protocol, replies)
        return replies

    async def _connected(self) -> _Replies:
        protocol = self._protocol
        if protocol is not None and protocol.lost is None:
            return protocol
        async with self._connecting:
            if self._protocol is not None and self._protocol.lost is None:
                return self._protocol
            self._protocol = await self._connect()
            return self._protocol

    async def _connect(self) -> _Replies:
        loop = asyncio.get_running_loop()
        e = self.endpoint
        host, port = await self._resolve() if self._resolve is not None else (e.host, e.port)
        try:
            async with asyncio.timeout(e.timeout):
                if e.path:
                    _, protocol = await loop.create_unix_connection(_Replies, e.path)
                else:
                    _, protocol = await loop.create_connection(_Replies, host, port)
        except (OSError, TimeoutError) as error:
            where = e.path or f"{host}:{port}"
            raise RedisConnectionError(f"Error connecting to Redis at {where}: {error}") from error
        self._protocol = protocol
        handshake = e.auth()
        if e.db:
            handshake.append(("SELECT", e.db))
        if handshake:
            for reply in await self.execute(handshake):
                if isinstance(reply, Exception):
                    protocol.fail(RedisConnectionError(f"Redis refused the connection: {reply}"))
                    raise reply
        return protocol

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None


def _demoted(protocol: _Replies, replies: list[Any]) -> list[Any]:
    """A READONLY reply: this server is a replica now. Drop the connection (the next call
    connects, and resolves the master, again); READONLY replies become ``ConnectionError``."""
    lost = RedisConnectionError("The previous master is now a replica")
    protocol.fail(lost)
    return [lost if isinstance(reply, ReadOnlyError) else reply for reply in replies]
