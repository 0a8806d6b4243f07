"""Two scenarios of the fault suite (``make faults``) in the test run, with api, two gateways and a
router as processes: a Redis pub/sub connection kill (``CLIENT KILL TYPE pubsub``) mid-stream, on a
redis-server of the test's own, and a Sentinel failover (kill -9 the master, the replica
promoted) on a Sentinel set of the test's own. The shared Redis is never paused or killed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from parley.testing.cluster import running_cluster
from parley.testing.engines import OwnRedis
from parley.testing.faultload import FaultLoad
from parley.testing.redis_sentinel import SentinelSet, sentinel_set
from shared.config import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    redis = OwnRedis()
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


async def test_pubsub_kill_loses_nothing_the_gap_fill_recovers(
    settings: Settings, own_redis: OwnRedis, amqp_url: str
) -> None:
    """Gateways' subscriber connections are dropped mid-stream. Clients' sockets stay open (so they
    never ask GET_HISTORY); each gateway resubscribes and fills the gap from room history
    (gateway/gapfill.py): nothing accepted is missed, nothing is refused or delivered twice."""
    with running_cluster(
        settings, own_redis.url, amqp_url, gateways=2, routers=1, PARLEY_CONNECTION_RATE_PER_SECOND="1000"
    ) as cluster:
        room = cluster.ivschat().create_room(name="faults", maximumMessageRatePerSecond=100)
        load = FaultLoad(cluster, room["arn"], rate=20)
        await load.start()
        await asyncio.sleep(1.5)
        killed_at = time.monotonic()
        killed = await asyncio.to_thread(own_redis.kill_pubsub)
        load.mark_fault_end()
        await asyncio.sleep(2.5)
        tally = await load.finish(quiet=1.5, unanswered=3, timeout=15)
    assert killed >= 2  # both gateways' subscribers (at least) were dropped
    assert tally.sent > 50 and len(tally.accepted) == tally.sent and not tally.errors
    assert all(not missed for missed in tally.missed_seqs.values()), (killed_at, tally.missed_seqs)
    assert tally.duplicates == 0
    assert tally.delivery_recovery is not None


@pytest.fixture
def sentinels() -> Iterator[SentinelSet]:
    with sentinel_set() as setup:
        yield setup


async def test_sentinel_failover_loses_no_accepted_message(
    settings: Settings, sentinels: SentinelSet, amqp_url: str
) -> None:
    """The master is killed mid-stream and the sentinel promotes the replica (~2 s): routers retry
    their room batches, gateways resubscribe on the new master and fill the gap from history.
    Every message echoed to the sender reaches both receivers once and is in the room's history
    on the new master (history big enough to hold them all, so a write lost with the old master
    would show)."""
    sentinel_env = {"PARLEY_REDIS_SENTINELS": sentinels.sentinels, "PARLEY_REDIS_SENTINEL_MASTER": sentinels.name}
    with running_cluster(
        settings,
        sentinels.redis_url,
        amqp_url,
        gateways=2,
        routers=1,
        PARLEY_CONNECTION_RATE_PER_SECOND="1000",
        **sentinel_env,
    ) as cluster:
        room = cluster.ivschat().create_room(name="faults", maximumMessageRatePerSecond=100)
        cluster.parleychat().update_room_extensions(identifier=room["arn"], historyMaxMessages=1000)
        load = FaultLoad(cluster, room["arn"], rate=20)
        await load.start()
        await asyncio.sleep(1.5)
        old = await asyncio.to_thread(sentinels.kill_master)
        await asyncio.to_thread(sentinels.wait_failover, old)
        load.mark_fault_end()
        await asyncio.sleep(2.5)
        tally = await load.finish(quiet=1.5, unanswered=3, timeout=20)
    assert tally.sent > 50 and len(tally.accepted) > 50
    assert not tally.not_in_history, sorted(tally.not_in_history)
    assert all(not missed for missed in tally.missed_seqs.values()), tally.missed_seqs
    assert tally.duplicates == 0
    assert tally.delivery_recovery is not None
