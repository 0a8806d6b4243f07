"""Redis Sentinel: the settings, and a real master + replica + sentinel set (started here on free
loopback ports) through which the store, its lean pipeline connection and the fan-out keep
working after the master is killed and the replica promoted, without being rebuilt."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from parley.testing.redis_sentinel import SentinelSet, sentinel_set
from shared.config import Settings
from shared.engine.redis.connect import RedisTarget
from shared.engine.redis.fanout import RedisFanout
from shared.engine.redis.pipeline import endpoint_of
from shared.engine.redis.resp import RespConnection
from shared.engine.redis.store import RedisStore
from tests.engine_helpers import Inbox

RECOVERY = 10.0  # seconds a failover may take to be followed (down-after 1 s + promotion)


# --- settings ------------------------------------------------------------------------------------
def test_sentinel_settings_parse_into_a_target() -> None:
    settings = Settings(
        redis_url="redis://:masterpw@ignored:1/2",
        redis_sentinels="s1:26379, [::1]:26380",
        redis_sentinel_master="main",
        redis_sentinel_password="sentinelpw",
    )
    assert settings.redis_problems() == []
    target = RedisTarget.from_settings(settings)
    assert target.sentinels == (("s1", 26379), ("::1", 26380))
    assert (target.sentinel_master, target.sentinel_password) == ("main", "sentinelpw")
    assert target.url == settings.redis_url  # the master's db and password stay in the URL
    assert RedisTarget.from_settings(Settings()).uses_sentinel is False


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"redis_sentinels": "s1:26379"}, "must be set together"),
        ({"redis_sentinel_master": "main"}, "must be set together"),
        ({"redis_sentinel_password": "pw"}, "without PARLEY_REDIS_SENTINELS"),
        ({"redis_sentinels": "s1", "redis_sentinel_master": "main"}, "'s1' is not host:port"),
        ({"redis_sentinels": "s1:26379,,s2:x", "redis_sentinel_master": "m"}, "'' is not host:port"),
        ({"redis_sentinels": "s1:70000", "redis_sentinel_master": "main"}, "'s1:70000' is not host:port"),
    ],
)
def test_unusable_sentinel_settings_are_refused_clearly(changes: dict[str, str], message: str) -> None:
    settings = Settings().with_(**changes)
    assert any(message in problem for problem in settings.redis_problems())
    with pytest.raises(ValueError, match=message):
        RedisTarget.from_settings(settings)


def test_sentinel_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_REDIS_SENTINELS", "a:1,b:2")
    monkeypatch.setenv("PARLEY_REDIS_SENTINEL_MASTER", "main")
    assert Settings.from_env().redis_sentinel_nodes == (("a", 1), ("b", 2))


def test_a_component_exits_at_startup_on_unusable_sentinel_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from parley import cli

    monkeypatch.setattr(cli, "configure_logging", lambda *args: None)  # keep the suite's logging
    monkeypatch.setenv("PARLEY_REDIS_SENTINELS", "s1:26379")
    monkeypatch.delenv("PARLEY_REDIS_SENTINEL_MASTER", raising=False)
    with pytest.raises(SystemExit, match="parley router: PARLEY_REDIS_SENTINELS and PARLEY_REDIS_SENTINEL_MASTER"):
        cli.main(["router"])


# --- a real Sentinel set --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelSet]:
    with sentinel_set() as setup:
        yield setup


def _target(setup: SentinelSet) -> RedisTarget:
    """The target the process settings give for this set (PARLEY_REDIS_SENTINELS and so on)."""
    settings = Settings(redis_url=setup.redis_url, redis_sentinels=setup.sentinels, redis_sentinel_master=setup.name)
    return RedisTarget.from_settings(settings)


async def _eventually(attempt: Callable[[], Awaitable[Any]], timeout: float = RECOVERY) -> Any:
    """``attempt()``'s result once it stops raising a Redis error (a failover in progress)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                return await attempt()
            except RedisError:
                await asyncio.sleep(0.05)


@pytest.mark.integration
async def test_a_demoted_master_readonly_reply_drops_the_lean_connection(sentinels: SentinelSet) -> None:
    # Point the lean connection at the replica first (a master just demoted answers like it),
    # then let the resolver name the master: the READONLY reply is a ConnectionError and the
    # next call reconnects to where the resolver says.
    master = sentinels.master_address()
    replica = ("127.0.0.1", sentinels.replica_port if master[1] == sentinels.master_port else sentinels.master_port)
    answers = [replica, master]

    async def resolve() -> tuple[str, int]:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    endpoint = endpoint_of(aioredis.Redis())
    assert endpoint is not None
    connection = RespConnection(endpoint, resolve)
    try:
        replies = await connection.execute([("SET", "parley-sentinel-test:demoted", b"1"), ("PING",)])
        assert isinstance(replies[0], RedisConnectionError) and replies[1] == b"PONG"
        assert await connection.execute([("SET", "parley-sentinel-test:demoted", b"2")]) == [b"OK"]
    finally:
        connection.close()


@pytest.mark.integration
async def test_store_and_fanout_follow_a_failover_without_a_restart(sentinels: SentinelSet, namespace: str) -> None:
    # wired as parley.runtime.real_backends does: one client and pipeline for store and fan-out
    target = _target(sentinels)
    store = RedisStore(target, namespace)
    fanout = RedisFanout(target, namespace, redis=store.redis, pipeline=store.pipeline)
    await store.start()
    key = f"{namespace}:sentinel-test"
    inbox = Inbox()
    try:
        assert store.pipeline._connection is not None  # the lean connection, not redis-py's pipeline
        sub = await fanout.subscribe("g1", inbox.room, None)
        await sub.add_room("r1")
        assert await store.pipeline.submit([("SET", key, b"before")]) == [b"OK"]
        assert await store.redis.get(key) == b"before"
        await fanout.publish_rooms([("r1", b"before")])
        await inbox.wait(1)

        old = sentinels.kill_master()
        new = await asyncio.to_thread(sentinels.wait_failover, old)
        assert new[1] != old

        # The same objects: the lean pipeline connection, the pool and the subscriber connection
        # each resolve the new master on reconnect.
        assert await _eventually(lambda: store.pipeline.submit([("SET", key, b"after")])) == [b"OK"]
        assert await _eventually(lambda: store.redis.get(key)) == b"after"
        async with aioredis.Redis(host=new[0], port=new[1]) as promoted:
            assert await promoted.get(key) == b"after"  # written on the new master

        async def until_delivered() -> None:  # pub/sub is at most once: publish until one arrives
            n = 0
            while not any(data.startswith(b"after") for _, data in cast("list[tuple[str, bytes]]", inbox.items)):
                with contextlib.suppress(RedisError):
                    await fanout.publish_rooms([("r1", b"after-%d" % n)])
                n += 1
                await asyncio.sleep(0.05)

        await asyncio.wait_for(until_delivered(), RECOVERY)
        assert fanout.reconnects >= 1
        await sub.close()
    finally:
        await fanout.close()
        await store.destroy()
        await store.close()
