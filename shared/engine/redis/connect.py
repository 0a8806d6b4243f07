"""How a process connects to Redis: one server named by a URL, the master a Sentinel set names,
or a Redis Cluster found from a seed node.

Every Redis connection of parley is made from a :class:`RedisTarget` through this module: the
store's pool, the fan-out's subscriber connection, and the lean pipeline connection (which asks
:func:`master_resolver` where the master is on every connect). So the Sentinel decision is taken
here once, not at each call site.

With Sentinel, ``url`` still carries the master's database, username, password and options; its
host and port are not used: the master's address is asked of the sentinels on every (re)connect,
so after a failover every connection follows the new master without a restart. A demoted master
answers writes with READONLY; redis-py's sentinel connections and the lean connection then drop
the connection and ask again.

With Cluster (``cluster``), ``url`` names one seed node (and the nodes' credentials); the
general client is redis-py's ``RedisCluster``, which finds the other nodes and follows MOVED
replies. Chosen over coredis by measurement (``bench/redis_cluster_clients.py``): coredis costs
1.9–2.8× the client CPU per command or script and 7.5–8× on SCAN + UNLINK, is even on sharded
pub/sub, and stopped delivering from every master while one restarted. The ordered pipeline
and the subscriber keep lean connections of their own, one per master
(``shared.engine.redis.cluster``, ``shared.engine.redis.subscriber``).

Must not: know any key or channel, or read the environment (``shared.config`` does that and
checks the Sentinel settings).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from shared.config import Settings

SENTINEL_TIMEOUT = 2.0  # connect and reply, per sentinel asked

CLUSTER_MAX_CONNECTIONS = 512  # per node; RedisCluster fails past it rather than waiting

# (host, port) of the current master
MasterResolver = Callable[[], Awaitable[tuple[str, int]]]

# The general client of a process: one server (or Sentinel's master), or a cluster.
AnyRedis = Redis | RedisCluster


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where a process's Redis is: ``url`` alone, ``sentinels`` naming ``sentinel_master``, or a
    ``cluster`` that ``url`` is a seed node of."""

    url: str = "redis://127.0.0.1:6379/0"
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_master: str = ""
    sentinel_password: str | None = field(default=None, repr=False)  # the sentinels' own (the master's is in url)
    cluster: bool = False

    @property
    def uses_sentinel(self) -> bool:
        return bool(self.sentinels)

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisTarget:
        """PARLEY_REDIS_URL, and the Sentinel settings if set (ValueError when they are not usable)."""
        return cls(
            url=settings.redis_url,
            sentinels=settings.redis_sentinel_nodes,
            sentinel_master=settings.redis_sentinel_master.strip(),
            sentinel_password=settings.redis_sentinel_password or None,
            cluster=settings.redis_cluster,
        )

    @classmethod
    def of(cls, target: RedisTarget | str) -> RedisTarget:
        """A bare URL is a target without Sentinel."""
        return target if isinstance(target, RedisTarget) else cls(url=target)


class _SentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's sentinel pool (connections resolve the master on connect), blocking when full
    like the plain store pool, and closing its sentinel clients with itself."""

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self.sentinel_manager.aclose()


def connection_pool(
    target: RedisTarget | str, *, max_connections: int | None = None, wait: float = 10.0, **options: Any
) -> ConnectionPool:
    """A pool for ``target``. With ``max_connections`` a full pool makes callers wait up to
    ``wait`` seconds for a free connection instead of failing. ``options`` are connection
    keyword arguments (``client_name``, ``socket_keepalive`` ...), over the URL's."""
    target = RedisTarget.of(target)
    if target.cluster:
        raise ValueError("a Redis Cluster has no single pool: use client(), or node_pool() per node")
    if not target.uses_sentinel:
        if max_connections is None:
            return ConnectionPool.from_url(target.url, **options)
        return BlockingConnectionPool.from_url(target.url, max_connections=max_connections, timeout=wait, **options)
    kwargs = _options_but_address(target.url, "Sentinel")
    if kwargs.pop("connection_class", None) is SSLConnection:  # rediss://
        kwargs["ssl"] = True  # the sentinel pool picks its own connection class from this
    kwargs.update(options)
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": SENTINEL_TIMEOUT, "socket_connect_timeout": SENTINEL_TIMEOUT}
    if target.sentinel_password:
        sentinel_kwargs["password"] = target.sentinel_password
    manager = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)
    return _SentinelPool(
        target.sentinel_master,
        manager,
        max_connections=max_connections if max_connections is not None else 2**31,
        timeout=wait,
        **kwargs,
    )


def node_pool(target: RedisTarget, host: str, port: int, **options: Any) -> ConnectionPool:
    """A pool for one node of ``target``'s cluster at ``host:port``, with the URL's credentials
    and options (the URL's own host and port are the seed's)."""
    kwargs = _options_but_address(target.url, "Cluster")
    kwargs.pop("db", None)  # a cluster has only db 0
    kwargs.update(options, host=host, port=port)
    return ConnectionPool(**kwargs)


def _options_but_address(url: str, mode: str) -> dict[str, Any]:
    """``url``'s connection options without its host and port (the sentinels or the cluster say
    where to connect); ValueError for a unix socket URL, which ``mode`` cannot use."""
    kwargs: dict[str, Any] = dict(parse_url(url))
    if "path" in kwargs:
        raise ValueError(f"PARLEY_REDIS_URL must be redis:// or rediss:// with {mode}, not a unix socket")
    kwargs.pop("host", None)
    kwargs.pop("port", None)
    return kwargs


def client(target: RedisTarget | str, *, max_connections: int | None = None, wait: float = 10.0) -> AnyRedis:
    """A client over its own :func:`connection_pool`, or a ``RedisCluster`` (closed with
    :func:`close_client`). Replies are bytes (no ``decode_responses``). Building it does not
    connect."""
    target = RedisTarget.of(target)
    if target.cluster:
        return RedisCluster.from_url(target.url, max_connections=CLUSTER_MAX_CONNECTIONS)
    return Redis(connection_pool=connection_pool(target, max_connections=max_connections, wait=wait))


async def close_client(redis: AnyRedis) -> None:
    """Close ``redis`` and its pool (with Sentinel, the sentinel clients too)."""
    await redis.aclose()
    if isinstance(redis, Redis):
        await redis.connection_pool.aclose()


def master_resolver(redis: AnyRedis) -> MasterResolver | None:
    """Where ``redis``'s master is now, asked of the sentinels; None when its pool has a fixed
    address (no Sentinel, or a cluster)."""
    if isinstance(redis, RedisCluster):
        return None
    return pool_master_resolver(redis.connection_pool)


def pool_master_resolver(pool: ConnectionPool) -> MasterResolver | None:
    """:func:`master_resolver` of a pool."""
    if isinstance(pool, SentinelConnectionPool):
        resolve: MasterResolver = pool.get_master_address
        return resolve
    return None
