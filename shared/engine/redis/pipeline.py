"""One ordered Redis pipeline per loop turn, shared by the Store and the Bus of a process.

Every command submitted in an event-loop turn goes out in one pipeline (one round trip), and
pipelines run one at a time in submission order (a serial :class:`~shared.engine.coalesce.TurnBatcher`).
So commands execute in the order they were submitted, whichever component submitted them: a
router queues a room batch's history append (Store), its room publish (Bus) and its done marks
(Store) together, pays one round trip for all three, and still has history written before the
publish and the marks after it.

The round trips go over one lean connection of their own (:mod:`shared.engine.redis.resp`), not
through redis-py's ``Pipeline``, which costs several times the client CPU per command; a URL that
needs what that connection does not do (TLS) keeps redis-py's pipeline.

With Redis Cluster the round trips go over one lean connection per master
(:mod:`shared.engine.redis.cluster`), at once; order then holds per hash slot, not across slots.

Scripts go as plain EVALSHA: redis-py's own pipeline would first ask ``SCRIPT EXISTS`` (a
second round trip on every flush). A Redis that lost its scripts (a restart) answers NOSCRIPT
for just those commands; the scripts are loaded again and only those commands are resent,
since the rest of the pipeline has run.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from redis.asyncio import ConnectionPool, Redis, RedisCluster
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.asyncio.sentinel import SentinelManagedConnection
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from shared.engine.coalesce import TurnBatcher
from shared.engine.redis.cluster import ClusterConnections
from shared.engine.redis.connect import AnyRedis, master_resolver
from shared.engine.redis.resp import Endpoint, RespConnection

# One queued command: the raw command name and its arguments.
Command = tuple[Any, ...]


class RedisPipeline:
    def __init__(self, redis: AnyRedis) -> None:
        self.redis = redis
        self._cluster: ClusterConnections | None = None
        self._connection: RespConnection | None = None
        if isinstance(redis, RedisCluster):
            if (endpoint := cluster_endpoint(redis)) is not None:  # else (TLS) redis-py's cluster pipeline
                self._cluster = ClusterConnections(redis, endpoint)
        elif (endpoint := endpoint_of(redis)) is not None:
            # With Sentinel, the lean connection asks the sentinels where the master is on every connect.
            self._connection = RespConnection(endpoint, master_resolver(redis))
        self._scripts: list[AsyncScript] = []
        self._turns: TurnBatcher[Command] = TurnBatcher(self._run_turn, serial=True)

    def script(self, source: str) -> AsyncScript:
        """Register a script that will be sent through this pipeline (as EVALSHA)."""
        script = self.redis.register_script(source)
        self._scripts.append(script)
        return script

    async def load_scripts(self) -> None:
        for script in self._scripts:
            await self.redis.script_load(script.script)

    def submit(self, commands: list[Command]) -> Awaitable[list[Any]]:
        """Queue ``commands`` now, in this turn's pipeline, behind everything submitted before;
        await their replies (the first error among them is raised to this caller only)."""
        return _replies(self._turns.submit(commands))

    async def _run_turn(self, commands: list[Command]) -> list[Any]:
        results = await self._run(commands)
        retry = [index for index, result in enumerate(results) if isinstance(result, NoScriptError)]
        if retry:
            await self.load_scripts()
            for index, result in zip(retry, await self._run([commands[i] for i in retry]), strict=True):
                results[index] = result
        return results

    @property
    def ordered_across_keys(self) -> bool:
        """Whether commands on different keys also run in submission order (not with Cluster)."""
        return not isinstance(self.redis, RedisCluster)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        if self._cluster is not None:
            self._cluster.close()

    async def _run(self, commands: list[Command]) -> list[Any]:
        if self._cluster is not None:
            return await self._cluster.execute(commands)
        if self._connection is not None:
            return await self._connection.execute(commands)
        async with self.redis.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return await pipe.execute(raise_on_error=False)


def endpoint_of(redis: Redis) -> Endpoint | None:
    """Where ``redis``'s pool connects, for the lean connection (:func:`pool_endpoint`)."""
    return pool_endpoint(redis.connection_pool)


def pool_endpoint(pool: ConnectionPool) -> Endpoint | None:
    """Where ``pool`` connects, for a lean connection; None when it is not plain TCP or a unix
    socket (TLS, or a pool class of its own). With Sentinel the host and port are only
    placeholders: the master is resolved on each connect (``connect.pool_master_resolver``)."""
    kwargs = pool.connection_kwargs
    if pool.connection_class in (Connection, SentinelManagedConnection):
        host, port, path = str(kwargs.get("host", "localhost")), int(kwargs.get("port", 6379)), ""
    elif pool.connection_class is UnixDomainSocketConnection:
        host, port, path = "", 0, str(kwargs["path"])
    else:
        return None
    return _endpoint(kwargs, host, port, path)


def cluster_endpoint(redis: RedisCluster) -> Endpoint | None:
    """The credentials and timeout of ``redis``'s node connections (host and port are per node);
    None with TLS, which the lean connection does not speak."""
    kwargs = redis.nodes_manager.connection_kwargs
    if kwargs.get("connection_class", Connection) is not Connection or kwargs.get("ssl"):
        return None
    return _endpoint(kwargs, "", 0, "")


def _endpoint(kwargs: dict[str, Any], host: str, port: int, path: str) -> Endpoint:
    """An endpoint at ``host:port`` or ``path`` with redis-py connection ``kwargs``' db,
    credentials and timeout."""
    return Endpoint(
        host=host,
        port=port,
        path=path,
        db=int(kwargs.get("db") or 0),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        timeout=float(kwargs.get("socket_timeout") or 5.0),
    )


async def completion(pending: Awaitable[Any] | None) -> None:
    """Await ``pending`` (a submission's replies) if there is one, for callers that need no reply."""
    if pending is not None:
        await pending


async def first_as_bool(pending: Awaitable[list[Any]]) -> bool:
    """Await a submission's replies; its first, as a bool (a script's 0 or 1)."""
    return bool((await pending)[0])


async def _replies(pending: Awaitable[list[Any]]) -> list[Any]:
    results = await pending
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results
