"""Presence conformance: the same tests against the memory and the Redis engine (``engine_store``)."""

from __future__ import annotations

import asyncio

import pytest

from shared.engine.presence import Presence
from shared.engine.store import Store


@pytest.fixture
def presence(engine_store: Store) -> Presence:
    return engine_store.presence


async def test_presence_first_and_last_connection_per_user(presence: Presence) -> None:
    assert await presence.refresh("gwA", 10_000) is False  # a new holder
    assert await presence.refresh("gwA", 10_000) is True
    assert await presence.add("r1", "c1", "gwA", "alice", {"name": "Alice ☕"}) is True
    assert await presence.add("r1", "c1", "gwA", "alice", {"name": "Alice ☕"}) is False  # idempotent
    assert await presence.add("r1", "c2", "gwA", "alice", None) is False  # second connection
    assert await presence.add("r1", "c3", "gwA", "bob", {}) is True
    assert await presence.add("r2", "c4", "gwA", "alice", {}) is True  # rooms are separate
    listed = sorted(await presence.list("r1"))
    assert listed == [("c1", "alice", {"name": "Alice ☕"}), ("c2", "alice", {}), ("c3", "bob", {})]
    assert await presence.remove("r1", "c1") is False  # alice still has c2
    assert await presence.remove("r1", "c1") is False  # not there any more
    assert await presence.remove("r1", "c2") is True  # her last one
    assert await presence.remove("r1", "nope") is False
    assert await presence.list("r1") == [("c3", "bob", {})]
    assert await presence.add("r1", "c5", "gwA", "alice", {}) is True  # back: first again


async def test_presence_dead_holder_is_hidden_then_swept_once(presence: Presence) -> None:
    await presence.refresh("live", 10_000)
    await presence.refresh("dying", 150)
    await presence.add("r1", "a1", "live", "alice", {})
    await presence.add("r1", "a2", "dying", "alice", {})
    await presence.add("r1", "b1", "dying", "bob", {"k": "v"})
    await presence.add("r2", "b2", "dying", "bob", {})
    assert await presence.sweep() == []  # nobody is dead yet
    assert len(await presence.list("r1")) == 3
    await asyncio.sleep(0.3)
    assert await presence.list("r1") == [("a1", "alice", {})]  # the dead holder's entries are hidden
    # two sweepers at once: every departure is reported exactly once
    first, second = await asyncio.gather(presence.sweep(), presence.sweep())
    assert sorted(first + second) == [("r1", "bob", {"k": "v"}), ("r2", "bob", {})]  # alice is still on "live"
    assert await presence.sweep() == []
    assert await presence.list("r2") == []
    assert await presence.refresh("dying", 10_000) is False  # swept: it must re-add its entries
    assert await presence.remove("r1", "b1") is False  # already gone
    assert await presence.remove("r1", "a1") is True  # alice's count forgot the swept a2


async def test_presence_refresh_keeps_a_holder_alive_and_zero_forgets_it(presence: Presence) -> None:
    await presence.refresh("gw", 200)
    await presence.add("r", "c", "gw", "u", {})
    for _ in range(3):
        await asyncio.sleep(0.1)
        await presence.refresh("gw", 200)
    assert await presence.list("r") == [("c", "u", {})]
    assert await presence.sweep() == []
    await presence.refresh("gw", 0)
    assert await presence.list("r") == []
