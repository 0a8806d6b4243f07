"""The subscriber's lean connection (``shared/engine/redis/pushes.py``) on the real Redis: it names
itself, hands over replies that arrived before its reader took over, dispatches messages as they
are parsed, and raises once the server drops it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.engine.redis.pipeline import endpoint_of
from shared.engine.redis.pushes import PushConnection

pytestmark = pytest.mark.integration


async def test_replies_before_the_reader_runs_are_kept_and_a_kill_ends_the_run(redis_url: str) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    endpoint = endpoint_of(redis)
    assert endpoint is not None
    name = f"parley-test-{uuid.uuid4().hex[:8]}"
    channel = f"{name}:ch".encode()
    connection = PushConnection(endpoint, name)
    replies: list[Any] = []
    try:
        await connection.connect()
        await connection.send("SUBSCRIBE", channel)
        await asyncio.sleep(0.1)  # the confirmation arrives before run() takes over
        reader = asyncio.create_task(connection.run(replies.append))
        await asyncio.sleep(0.05)
        assert replies == [[b"subscribe", channel, 1]]
        assert await redis.publish(channel, b"hello") == 1
        for _ in range(100):
            if len(replies) == 2:
                break
            await asyncio.sleep(0.01)
        assert replies[1] == [b"message", channel, b"hello"]
        clients = [c for c in await redis.client_list() if c.get("name") == name]
        assert len(clients) == 1  # CLIENT SETNAME: operators and fault tests find it
        await redis.client_kill_filter(_id=clients[0]["id"])
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(reader, 5)
    finally:
        with contextlib.suppress(Exception):
            await connection.disconnect()
        await redis.aclose()
