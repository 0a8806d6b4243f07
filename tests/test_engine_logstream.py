"""Log stream conformance: the same tests against the memory and the RabbitMQ engines.

Deliveries reach one consumer at a time, in publish order, at most ``prefetch`` unacked; what a
stopped consumer did not ack goes to the next one, in order; a full stream drops and counts.
"""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from prometheus_client import REGISTRY

from shared.engine.actions import Ack
from shared.engine.memory.logstream import MemoryLogStream
from tests.engine_helpers import Inbox, MakeBus, engine_queue_type


def _dropped() -> float:
    return REGISTRY.get_sample_value("parley_log_deliveries_dropped_total") or 0.0


class LogRecorder:
    """A log handler that records ``(room_id, data)`` and acks only when told to."""

    def __init__(self, auto_ack: bool = True) -> None:
        self.auto_ack = auto_ack
        self.inbox = Inbox()
        self.acks: list[Ack] = []

    @property
    def data(self) -> list[bytes]:
        return [data for _, data in cast("list[tuple[str, bytes]]", self.inbox.items)]

    async def __call__(self, room_id: str, data: bytes, ack: Ack) -> None:
        self.inbox.room(room_id, data)
        self.acks.append(ack)
        if self.auto_ack:
            await ack()


async def test_deliveries_arrive_in_order_with_their_room(make_bus: MakeBus) -> None:
    router, sink = await make_bus(), await make_bus()
    recorder = LogRecorder()
    consumer = await sink.logs.consume(recorder)
    sent = [(f"room-{n % 3}", b"delivery-%d" % n) for n in range(50)]
    for room_id, data in sent:
        await router.logs.publish(room_id, data)
    assert await recorder.inbox.wait(50) == sent
    await consumer.stop()


async def test_unacked_deliveries_go_to_the_next_consumer_in_order(make_bus: MakeBus) -> None:
    router, sink = await make_bus(), await make_bus()
    for n in range(10):
        await router.logs.publish("room", b"%d" % n)
    first = LogRecorder(auto_ack=False)
    consumer = await sink.logs.consume(first)
    await first.inbox.wait(10)
    for n in (0, 1, 2, 5):  # acks may come in any order
        await first.acks[n]()
    await asyncio.sleep(0.1)  # acks are fire-and-forget frames; let them reach the broker
    await consumer.stop()

    second = LogRecorder()
    consumer = await sink.logs.consume(second)
    await second.inbox.wait(6)
    await router.logs.publish("room", b"sentinel")
    await second.inbox.wait(7)
    assert second.data == [b"3", b"4", b"6", b"7", b"8", b"9", b"sentinel"]
    await consumer.stop()


async def test_at_most_prefetch_deliveries_are_unacked(make_bus: MakeBus) -> None:
    router, sink = await make_bus(), await make_bus()
    recorder = LogRecorder(auto_ack=False)
    consumer = await sink.logs.consume(recorder, prefetch=3)
    for n in range(10):
        await router.logs.publish("room", b"%d" % n)
    await recorder.inbox.wait(3)
    await asyncio.sleep(0.2)
    assert recorder.data == [b"0", b"1", b"2"]
    await recorder.acks[1]()  # one slot free: one more comes
    await recorder.inbox.wait(4)
    await asyncio.sleep(0.2)
    assert recorder.data == [b"0", b"1", b"2", b"3"]
    await consumer.stop()


async def test_one_consumer_is_active_the_others_wait(make_bus: MakeBus) -> None:
    router, sink_a, sink_b = await make_bus(), await make_bus(), await make_bus()
    a, b = LogRecorder(), LogRecorder()
    consumer_a = await sink_a.logs.consume(a)
    consumer_b = await sink_b.logs.consume(b)  # a hot standby
    for n in range(10):
        await router.logs.publish("room", b"a-%d" % n)
    await a.inbox.wait(10)
    await asyncio.sleep(0.1)
    assert b.inbox.items == []
    await consumer_a.stop()
    for n in range(10):
        await router.logs.publish("room", b"b-%d" % n)
    await b.inbox.wait(10)
    assert b.data == [b"b-%d" % n for n in range(10)]
    assert a.data == [b"a-%d" % n for n in range(10)]
    await consumer_b.stop()


async def test_a_full_stream_drops_the_newest_and_counts_it(make_bus: MakeBus, request: pytest.FixtureRequest) -> None:
    engine = request.node.callspec.params["make_bus"]
    kept = 2
    if engine == "memory":
        bus = await make_bus()
        assert isinstance(bus.logs, MemoryLogStream)
        bus.logs.max_deliveries = 2
    else:  # the bound is the queue's, declared when the bus connects
        queue_type = engine_queue_type(engine)
        bus = await request.getfixturevalue("amqp_bus_factory")(log_queue_max_bytes=200, queue_type=queue_type)
        if queue_type == "quorum":
            kept = 3  # a quorum queue refuses only once it is at its bound: the 3rd (160 → 240 B) gets in
    dropped = _dropped()
    for n in range(5):
        await bus.logs.publish("room", b"%d" % n * 80)  # never raises, never waits
    assert _dropped() == dropped + 5 - kept
    recorder = LogRecorder()
    consumer = await bus.logs.consume(recorder)
    await recorder.inbox.wait(kept)
    await asyncio.sleep(0.1)
    assert recorder.data == [b"%d" % n * 80 for n in range(kept)]  # the oldest were kept
    await consumer.stop()
