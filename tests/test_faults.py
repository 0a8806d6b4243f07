"""One scenario of the fault suite (``make faults``) in the test run: a Redis pub/sub connection
kill (``CLIENT KILL TYPE pubsub``) mid-stream, on a redis-server of the test's own (the shared one
is never paused or killed), with api, two gateways and a router as processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from parley.testing.cluster import running_cluster
from parley.testing.engines import OwnRedis
from parley.testing.faultload import FaultLoad
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


async def test_pubsub_kill_loses_only_the_resubscribe_window(
    settings: Settings, own_redis: OwnRedis, amqp_url: str
) -> None:
    """Gateways' subscriber connections are dropped mid-stream. Today a gateway resubscribes but
    does not fill the gap (clients' sockets stay open, so they never ask GET_HISTORY): what was
    published while it was unsubscribed is missed, and only that. Nothing is refused, nothing is
    delivered twice, and delivery resumes. (Pub/sub gap-fill will make the missed set empty.)"""
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
    for missed in tally.missed_seqs.values():  # only what was sent just around the kill
        assert all(killed_at - 0.5 <= tally.sent_at[seq] <= killed_at + 1.0 for seq in missed), missed
    assert tally.missed_live == tally.missed_after  # no reconnect, so no catch-up either
    assert tally.duplicates == 0
    assert tally.delivery_recovery is not None
