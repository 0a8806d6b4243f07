"""Which router consumes which shard: rendezvous hashing over the live routers.

Routers report themselves alive in the Store; every router computes the same owner for each
shard from the same live set, so adding a router moves only about ``1/n`` of the shards, and a
dead router's shards move once its report expires. RabbitMQ's single-active-consumer on every
shard queue keeps it to one consumer even while two routers briefly disagree.
"""

from __future__ import annotations

import hashlib


def _weight(router_id: str, shard: int) -> bytes:
    return hashlib.blake2b(f"{router_id}/{shard}".encode(), digest_size=8).digest()


def owner(shard: int, routers: list[str]) -> str:
    return max(routers, key=lambda router_id: _weight(router_id, shard))


def owned_shards(router_id: str, routers: list[str], shards: int) -> set[int]:
    live = sorted(set(routers) | {router_id})
    return {shard for shard in range(shards) if owner(shard, live) == router_id}
