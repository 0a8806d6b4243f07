"""Which router consumes which shard: rendezvous hashing over the live routers, with a cap.

Routers report themselves alive in the Store; every router computes the same owners from the
same live set. Each shard goes to the router that ranks highest for it (rendezvous hashing:
adding or losing a router moves few shards) among those still under ``ceil(shards / routers)``.
The cap matters with few shards: plain rendezvous gave one of two routers 3 of 4 shards, and
that router's queueing set the cluster's latency. RabbitMQ's single-active-consumer on every
shard queue keeps it to one consumer even while two routers briefly disagree.
"""

from __future__ import annotations

import hashlib


def _weight(router_id: str, shard: int) -> bytes:
    return hashlib.blake2b(f"{router_id}/{shard}".encode(), digest_size=8).digest()


def assignment(routers: list[str], shards: int) -> dict[int, str]:
    """Every shard's owner among ``routers``: the same answer for the same live set anywhere."""
    live = sorted(set(routers))
    capacity = -(-shards // len(live))
    load = dict.fromkeys(live, 0)
    owners: dict[int, str] = {}
    for shard in range(shards):
        for router_id in sorted(live, key=lambda r: _weight(r, shard), reverse=True):
            if load[router_id] < capacity:
                owners[shard] = router_id
                load[router_id] += 1
                break
    return owners


def owned_shards(router_id: str, routers: list[str], shards: int) -> set[int]:
    owners = assignment([*routers, router_id], shards)
    return {shard for shard, owner in owners.items() if owner == router_id}
