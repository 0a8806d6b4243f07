"""Redis Cluster routing for parley's own lean connections: which master serves a command's key,
and one :class:`~shared.engine.redis.resp.RespConnection` per master for the ordered pipeline.

The slot map is redis-py's (``RedisCluster.nodes_manager``: it asked ``CLUSTER SLOTS`` and keeps
the answer); this module only reads it, and asks it to refresh after a MOVED reply or a lost
node. A turn's commands are split by master, keeping their order on each, and the masters' round
trips run at once. So commands on one hash slot (a room's history append and its room publish,
which share the room's hash tag) run in the order they were queued; commands on different slots
have no order between them (``shared.engine.store``: a caller that needs one awaits the first).

MOVED, ASK and TRYAGAIN replies mean the command did not run: it is sent again where the reply
points, at most :data:`MAX_REDIRECTS` times. A connection lost mid round trip fails those
commands only (they may have run; sending them again could apply a write twice).

Must not: know any key layout, or carry pub/sub (``shared.engine.redis.fanout`` subscribes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import structlog
from redis.asyncio import RedisCluster
from redis.crc import key_slot
from redis.exceptions import AskError, ClusterDownError, MovedError, RedisClusterException, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.engine.redis.resp import Endpoint, RespConnection

log = structlog.get_logger(__name__)

MAX_REDIRECTS = 5
REFRESH_MIN_INTERVAL = 0.25
TRYAGAIN_DELAY = 0.05  # a slot in migration answers TRYAGAIN for multi-key commands a moment
_SCRIPT_COMMANDS = frozenset({"EVALSHA", "EVAL", "FCALL", b"EVALSHA", b"EVAL", b"FCALL"})


def command_key(command: Sequence[Any]) -> bytes | None:
    """The key (or sharded channel) that decides where ``command`` runs; None if it has none
    (it may then run on any master). Scripts: their first key."""
    name = command[0]
    if name in _SCRIPT_COMMANDS:
        return _as_bytes(command[3]) if int(command[2]) > 0 else None
    return _as_bytes(command[1]) if len(command) > 1 else None


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def slot_of(command: Sequence[Any]) -> int:
    key = command_key(command)
    return 0 if key is None else key_slot(key)


class ClusterConnections:
    """One lean connection per master of ``redis``'s cluster; :meth:`execute` runs a turn."""

    def __init__(self, redis: RedisCluster, endpoint: Endpoint) -> None:
        """``endpoint``: the credentials and timeout every node connection uses (its host and
        port are the seed's and are not used)."""
        self._redis = redis
        self._endpoint = endpoint
        self._connections: dict[tuple[str, int], RespConnection] = {}
        self._ready = False
        self._refreshed_at = 0.0

    async def execute(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Each command's reply (error replies as exceptions, in place), in ``commands``' order."""
        if not self._ready:
            await self._redis.initialize()  # reads the slot map once; after that, only on errors
            self._ready = True
        results: list[Any] = [None] * len(commands)
        todo: list[tuple[int, tuple[str, int] | None]] = [(index, None) for index in range(len(commands))]
        for attempt in range(MAX_REDIRECTS + 1):
            by_node: dict[tuple[tuple[str, int], bool], list[int]] = {}
            for index, asked in todo:
                try:
                    node = asked or self._node_of(commands[index])
                except RedisClusterException as error:  # the slot has no master now: this command fails
                    results[index] = error
                    continue
                by_node.setdefault((node, asked is not None), []).append(index)
            rounds = [
                self._round(node, asking, [commands[i] for i in indexes]) for (node, asking), indexes in by_node.items()
            ]
            todo = []
            refresh = False
            for (_, indexes), replies in zip(by_node.items(), await asyncio.gather(*rounds), strict=True):
                for index, reply in zip(indexes, replies, strict=True):
                    results[index] = reply
                    if isinstance(reply, MovedError):  # (a MovedError is an AskError too: first)
                        await self._redis.nodes_manager.move_slot(reply)  # that slot's new owner, at once
                        refresh = True  # and the rest of the map, soon: other slots may have moved too
                        todo.append((index, None))
                    elif isinstance(reply, AskError):  # only this command, only on that node
                        todo.append((index, (reply.host, int(reply.port))))
                    elif isinstance(reply, TryAgainError | ClusterDownError):
                        todo.append((index, None))
                    elif isinstance(reply, RedisConnectionError | RedisTimeoutError):
                        refresh = True  # the node may be gone or replaced; the command is not resent
            if refresh:  # also when nothing is resent: the next turn must not go to a dead node again
                await self._refresh()
            if not todo or attempt == MAX_REDIRECTS:
                break
            if any(isinstance(results[index], TryAgainError | ClusterDownError) for index, _ in todo):
                await asyncio.sleep(TRYAGAIN_DELAY)
        return results

    def _node_of(self, command: tuple[Any, ...]) -> tuple[str, int]:
        node = self._redis.nodes_manager.get_node_from_slot(slot_of(command))
        return node.host, int(node.port)

    async def _round(self, node: tuple[str, int], asking: bool, commands: list[tuple[Any, ...]]) -> list[Any]:
        """One round trip to ``node``; a lost connection or a timeout becomes every command's reply."""
        connection = self._connections.get(node)
        if connection is None:
            host, port = node
            connection = self._connections[node] = RespConnection(replace(self._endpoint, host=host, port=port))
        try:
            if not asking:
                return await connection.execute(commands)
            sent: list[tuple[Any, ...]] = []
            for command in commands:
                sent += [("ASKING",), command]
            return (await connection.execute(sent))[1::2]
        except (RedisConnectionError, RedisTimeoutError) as error:
            return [error] * len(commands)

    async def _refresh(self) -> None:
        """Read the slot map again (at most every :data:`REFRESH_MIN_INTERVAL`: while a master is
        down, every turn fails on it)."""
        if time.monotonic() - self._refreshed_at < REFRESH_MIN_INTERVAL:
            return
        self._refreshed_at = time.monotonic()
        try:
            await self._redis.nodes_manager.initialize()
        except Exception as error:  # noqa: BLE001 - the next turn tries again; its commands fail meanwhile
            log.warning("redis.cluster_refresh_failed", error_type=type(error).__name__, error=str(error))
        known = {(node.host, int(node.port)) for node in self._redis.get_primaries()}  # as _node_of keys them
        for node in [node for node in self._connections if node not in known]:
            self._connections.pop(node).close()

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
