"""The pipeline's lean RESP connection (shared/engine/redis/resp.py) against the real Redis, and a
silent server for its timeout."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.engine.redis.pipeline import endpoint_of
from shared.engine.redis.resp import Endpoint, RespConnection


def endpoint(redis_url: str, **changes: Any) -> Endpoint:
    found = endpoint_of(aioredis.Redis.from_url(redis_url))
    assert found is not None
    return dataclasses.replace(found, **changes)


@pytest.fixture
async def key(redis_url: str) -> AsyncIterator[str]:
    name = f"test-resp:{uuid.uuid4().hex}"
    yield name
    admin = aioredis.Redis.from_url(redis_url)
    await admin.delete(name)
    await admin.aclose()


def test_endpoints_follow_the_url() -> None:
    tcp = endpoint_of(aioredis.Redis.from_url("redis://user:pw@10.0.0.9:6380/3?socket_timeout=2"))
    assert tcp == Endpoint(host="10.0.0.9", port=6380, db=3, username="user", password="pw", timeout=2.0)
    unix = endpoint_of(aioredis.Redis.from_url("unix:///run/redis.sock?db=1"))
    assert unix is not None and (unix.path, unix.db) == ("/run/redis.sock", 1)
    assert endpoint_of(aioredis.Redis.from_url("rediss://10.0.0.9:6380/0")) is None  # TLS keeps redis-py's


@pytest.mark.integration
async def test_replies_come_back_in_order_with_errors_in_place(redis_url: str, key: str) -> None:
    connection = RespConnection(endpoint(redis_url))
    try:
        replies = await connection.execute(
            [("SADD", key, "a", "b"), ("SMISMEMBER", key, "a", "z"), ("EVALSHA", "0" * 40, 0), ("INCR", key)]
        )
        assert replies[:2] == [2, [1, 0]]
        assert isinstance(replies[2], NoScriptError)  # redis-py's own class: the pipeline reloads on it
        assert isinstance(replies[3], ResponseError) and "WRONGTYPE" in str(replies[3])
        # the next round trip on the same connection is still aligned
        assert await connection.execute([("SCARD", key), ("GET", "test-resp:missing")]) == [2, None]
    finally:
        connection.close()


@pytest.mark.integration
async def test_concurrent_round_trips_are_matched_first_in_first_out(redis_url: str, key: str) -> None:
    connection = RespConnection(endpoint(redis_url))
    try:
        replies = await asyncio.gather(
            *(connection.execute([("RPUSH", key, str(i)), ("LLEN", key)]) for i in range(50))
        )
        assert [reply[1] for reply in replies] == list(range(1, 51))
    finally:
        connection.close()


@pytest.mark.integration
async def test_selects_the_urls_database(redis_url: str, key: str) -> None:
    where = endpoint(redis_url, db=5)
    connection = RespConnection(where)
    other = aioredis.Redis(host=where.host, port=where.port, db=5, username=where.username, password=where.password)
    try:
        await connection.execute([("SET", key, "in-db-5")])
        assert await other.get(key) == b"in-db-5"
    finally:
        connection.close()
        await other.delete(key)
        await other.aclose()


@pytest.mark.integration
async def test_a_killed_connection_fails_what_is_in_flight_and_the_next_call_reconnects(redis_url: str) -> None:
    connection = RespConnection(endpoint(redis_url))
    admin = aioredis.Redis.from_url(redis_url)
    try:
        (client_id,) = await connection.execute([("CLIENT", "ID")])
        blocked = asyncio.ensure_future(connection.execute([("BLPOP", "test-resp:never", 5)]))
        await asyncio.sleep(0.1)
        await admin.client_kill_filter(_id=client_id)
        with pytest.raises(RedisConnectionError):
            await blocked
        (again,) = await connection.execute([("CLIENT", "ID")])
        assert again != client_id
    finally:
        connection.close()
        await admin.aclose()


async def test_a_silent_server_times_out_and_is_dropped() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = RespConnection(Endpoint(host="127.0.0.1", port=port, timeout=0.2))
    try:
        with pytest.raises(RedisTimeoutError):
            await connection.execute([("PING",)])
        with pytest.raises(RedisTimeoutError):  # a new connection, not replies matched late
            await connection.execute([("PING",)])
        assert len(accepted) == 2
    finally:
        connection.close()
        server.close()
        await server.wait_closed()


async def test_refused_connection_is_a_redis_connection_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(RedisConnectionError):
        await RespConnection(Endpoint(host="127.0.0.1", port=port, timeout=1)).execute([("PING",)])


@pytest.mark.integration
def test_works_under_uvloop(redis_url: str, key: str) -> None:
    """Production runs uvloop, whose transports are not asyncio.Transport subclasses."""
    import uvloop

    async def round_trip() -> list[Any]:
        connection = RespConnection(endpoint(redis_url))
        try:
            return await connection.execute([("SET", key, "1"), ("GET", key)])
        finally:
            connection.close()

    assert uvloop.run(round_trip()) == [b"OK", b"1"]
