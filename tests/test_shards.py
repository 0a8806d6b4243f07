"""Shard ownership: every shard has exactly one owner, loads are even, few shards move."""

from __future__ import annotations

import collections

from router.shards import assignment, owned_shards


def test_every_router_agrees_and_every_shard_has_one_owner() -> None:
    routers = [f"router-{i:02x}" for i in range(5)]
    owned = [owned_shards(r, list(reversed(routers)), 16) for r in routers]
    assert sorted(s for mine in owned for s in mine) == list(range(16))


def test_loads_are_even_even_with_few_shards() -> None:
    for trial in range(200):  # router ids are random in production: try many
        routers = [f"r{trial}-a", f"r{trial}-b"]
        loads = collections.Counter(assignment(routers, 4).values())
        assert sorted(loads.values()) == [2, 2]
    loads = collections.Counter(assignment([f"x{i}" for i in range(3)], 16).values())
    assert max(loads.values()) <= 6 and sum(loads.values()) == 16  # ceil(16 / 3)


def test_a_new_router_takes_shards_without_reshuffling_the_rest() -> None:
    before = assignment(["a", "b", "c"], 64)
    after = assignment(["a", "b", "c", "d"], 64)
    moved = [s for s in range(64) if before[s] != after[s]]
    assert sum(after[s] == "d" for s in moved) == 16  # the newcomer's fair share
    assert len(moved) <= 16 + 4  # and only a few others that the cap pushes along
