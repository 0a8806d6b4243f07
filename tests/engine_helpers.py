"""What the engine conformance suites (``tests/test_engine_*.py``) share: the ``make_bus``
fixture over both engines, and small collectors to wait on deliveries.

To prove a message was *not* delivered, tests publish a sentinel on the same path afterwards and
wait for it: every path (one channel, one queue) keeps one publisher's order, so anything sent
before it would have arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import pytest

from shared.engine.bus import Bus
from shared.engine.memory import MemoryBus

if TYPE_CHECKING:
    from shared.engine.amqp import AmqpRedisBus

MakeBus = Callable[[], Awaitable[Bus]]
AmqpBusFactory = Callable[..., Awaitable["AmqpRedisBus"]]  # the ``amqp_bus_factory`` fixture
TIMEOUT = 5.0
# "amqp": quorum queues (the default PARLEY_AMQP_QUEUE_TYPE); "amqp-classic": classic ones;
# "amqp-redis-cluster": quorum queues, fan-out over a Redis Cluster (sharded pub/sub)
ENGINES = [
    "memory",
    pytest.param("amqp", marks=pytest.mark.integration),
    pytest.param("amqp-classic", marks=pytest.mark.integration),
    pytest.param("amqp-redis-cluster", marks=pytest.mark.integration),
]


def engine_queue_type(engine: str) -> str:
    """The PARLEY_AMQP_QUEUE_TYPE of an amqp ``make_bus`` engine."""
    return "classic" if engine == "amqp-classic" else "quorum"


@pytest.fixture(params=ENGINES)
def make_bus(request: pytest.FixtureRequest) -> MakeBus:
    """``await make_bus()``: a bus of this test's deployment. Memory: every call is the same
    in-process bus (one process is the whole deployment); amqp: a new connection each call."""
    if request.param == "memory":
        bus = MemoryBus(shards=4)

        async def same() -> Bus:
            return bus

        return same
    factory: AmqpBusFactory = request.getfixturevalue("amqp_bus_factory")
    options: dict[str, object] = {"queue_type": engine_queue_type(request.param)}
    if request.param == "amqp-redis-cluster":
        options["redis_target"] = request.getfixturevalue("redis_cluster_target")

    async def make() -> Bus:
        return await factory(**options)

    return make


class Inbox:
    """Collects deliveries; ``wait(n)`` returns once ``n`` have arrived (or fails)."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self._changed = asyncio.Event()

    def add(self, item: object) -> None:
        self.items.append(item)
        self._changed.set()

    def room(self, room_id: str, data: bytes) -> None:
        self.add((room_id, data))

    async def wait(self, count: int, timeout: float = TIMEOUT) -> list[object]:
        async def until() -> None:
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(until(), timeout)
        return self.items


async def until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.01)


def histogram_count(histogram: object) -> float:
    """How many observations a prometheus_client Histogram has (its ``_count`` sample)."""
    for family in histogram.collect():  # type: ignore[attr-defined]
        for sample in family.samples:
            if sample.name.endswith("_count"):
                return float(sample.value)
    raise AssertionError("no _count sample")


async def queue_depth(amqp_url: str, queue: str) -> int:
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0
    finally:
        await connection.close()


async def kill_subscriber(redis_url: str, name: str) -> int:
    """``CLIENT KILL`` the pub/sub connection named ``name`` (a fan-out's ``subscriber_name``), so
    concurrent users of the same Redis keep theirs; how many were killed."""
    import redis.asyncio as aioredis

    admin = aioredis.Redis.from_url(redis_url)
    try:
        ids = [c["id"] for c in await admin.client_list(_type="pubsub") if c.get("name") == name]
        return sum([int(await admin.execute_command("CLIENT", "KILL", "ID", i, "TYPE", "pubsub")) for i in ids])
    finally:
        await admin.aclose()
