"""Actions conformance: the same tests against the memory and the RabbitMQ engines, plus
RabbitMQ-only tests (``integration``) for what only a broker can do: redelivery, hand-over,
single active consumer, persistence, malformed messages, batching, and the bus's lifecycle.
"""

from __future__ import annotations

import asyncio
import zlib

import pytest

from shared.engine.actions import Ack, Actions, shard_of
from shared.protocol.envelope import ActionEnvelope, Kind
from tests.engine_helpers import TIMEOUT, AmqpBusFactory, Inbox, MakeBus, histogram_count, queue_depth, until


def action(room_id: str, n: int) -> ActionEnvelope:
    return ActionEnvelope(Kind.SEND_MESSAGE, f"{room_id}-{n}", room_id, received_ms=n, content=f"m{n}")


def rooms_on_shard(actions: Actions, shard: int, count: int) -> list[str]:
    found = [f"room-{i}" for i in range(10_000) if actions.shard_of(f"room-{i}") == shard]
    return found[:count]


class Recorder:
    """A shard handler that records actions and acks only when told to."""

    def __init__(self, auto_ack: bool = True) -> None:
        self.auto_ack = auto_ack
        self.inbox = Inbox()
        self.acks: list[Ack] = []

    @property
    def ids(self) -> list[str]:
        return [a.frame_id for a in self.inbox.items]  # type: ignore[attr-defined]

    async def __call__(self, envelope: ActionEnvelope, ack: Ack, redelivered: bool = False) -> None:
        self.inbox.add(envelope)
        self.acks.append(ack)
        if self.auto_ack:
            await ack()


def test_shard_of_is_stable() -> None:
    assert shard_of("room-a", 16) == zlib.crc32(b"room-a") % 16 == shard_of("room-a", 16)
    assert {shard_of(f"r{i}", 4) for i in range(100)} == {0, 1, 2, 3}


async def test_bus_shard_of_matches_function(make_bus: MakeBus) -> None:
    bus = await make_bus()
    assert bus.actions.shards == 4
    assert all(bus.actions.shard_of(f"r{i}") == shard_of(f"r{i}", 4) for i in range(50))


async def test_actions_of_one_room_arrive_in_order(make_bus: MakeBus) -> None:
    bus = await make_bus()
    recorder = Recorder()
    consumer = await bus.actions.consume_shard(bus.actions.shard_of("room-order"), recorder)
    sent = [action("room-order", i) for i in range(500)]
    for envelope in sent:
        await bus.actions.publish(envelope)
    await recorder.inbox.wait(500)
    assert recorder.inbox.items == sent  # whole envelopes survive the wire, in order
    await consumer.stop()


async def test_actions_go_only_to_their_shard(make_bus: MakeBus) -> None:
    bus = await make_bus()
    mine, other = rooms_on_shard(bus.actions, 1, 3), rooms_on_shard(bus.actions, 2, 3)
    recorders = {1: Recorder(), 2: Recorder()}
    consumers = [await bus.actions.consume_shard(s, r) for s, r in recorders.items()]
    await asyncio.gather(*(bus.actions.publish(action(room, n)) for room in mine + other for n in range(5)))
    await recorders[1].inbox.wait(15)
    await recorders[2].inbox.wait(15)
    assert {a.room_id for a in recorders[1].inbox.items} == set(mine)  # type: ignore[attr-defined]
    assert {a.room_id for a in recorders[2].inbox.items} == set(other)  # type: ignore[attr-defined]
    for room in mine:  # concurrent publishes: each room's own sequence is still whole
        assert sorted(i for i in recorders[1].ids if i.startswith(room + "-")) == sorted(
            f"{room}-{n}" for n in range(5)
        )
    for consumer in consumers:
        await consumer.stop()


async def test_handler_calls_never_overlap(make_bus: MakeBus) -> None:
    bus = await make_bus()
    active, peak, seen = 0, 0, []

    async def slow(envelope: ActionEnvelope, ack: Ack, redelivered: bool = False) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.002)
        seen.append(envelope.frame_id)
        active -= 1
        await ack()

    consumer = await bus.actions.consume_shard(bus.actions.shard_of("room-x"), slow)
    await asyncio.gather(*(bus.actions.publish(action("room-x", n)) for n in range(30)))
    await asyncio.wait_for(until(lambda: len(seen) == 30), TIMEOUT)
    assert peak == 1
    await consumer.stop()


# --- RabbitMQ only: what needs a broker ----------------------------------------------------------
@pytest.mark.integration
async def test_unacked_actions_come_back_after_stop_in_order(amqp_bus_factory: AmqpBusFactory, amqp_url: str) -> None:
    bus = await amqp_bus_factory()
    shard = bus.actions.shard_of("room-r")
    sent = [action("room-r", i) for i in range(40)]
    for envelope in sent:
        await bus.actions.publish(envelope)

    first = Recorder(auto_ack=False)
    consumer = await bus.actions.consume_shard(shard, first)
    await first.inbox.wait(10)
    for ack in first.acks[:10]:  # the first 10 are done; the rest were handed out, never acked
        await ack()
    await until(lambda: len(first.inbox.items) >= 12)
    await consumer.stop()
    handed_out = len(first.inbox.items)
    await first.acks[-1]()  # an ack after stop is a harmless no-op: the message comes back

    second = Recorder()
    consumer = await bus.actions.consume_shard(shard, second)
    await second.inbox.wait(30)
    await asyncio.sleep(0.1)
    assert second.ids == [e.frame_id for e in sent[10:]]  # nothing lost, nothing acked repeated
    assert handed_out >= 12
    await consumer.stop()
    assert await queue_depth(amqp_url, bus.actions.queue_name(shard)) == 0


@pytest.mark.integration
async def test_hand_over_settles_in_flight_work_and_keeps_order(amqp_bus_factory: AmqpBusFactory) -> None:
    """A router releasing a shard finishes (acks) its batches in flight during ``settle``; the
    next router gets only the rest, before anything published meanwhile (no early switch of the
    single active consumer, which would reorder the room)."""
    gateway, router_1, router_2 = [await amqp_bus_factory() for _ in range(3)]
    shard = gateway.actions.shard_of("room-h")
    first, second = Recorder(auto_ack=False), Recorder()
    consumer = await router_1.actions.consume_shard(shard, first)
    await router_2.actions.consume_shard(shard, second)  # waits, inactive
    for n in range(10):
        await gateway.actions.publish(action("room-h", n))
    await first.inbox.wait(10)

    async def settle() -> None:  # the first 6 were "in flight": they finish during the hand-over
        for n in range(10, 15):  # meanwhile the room goes on
            await gateway.actions.publish(action("room-h", n))
        await asyncio.sleep(0.2)
        for ack in first.acks[:6]:
            await ack()

    await consumer.stop(settle=settle)
    await second.inbox.wait(9)
    await asyncio.sleep(0.1)
    assert second.ids == [f"room-h-{n}" for n in range(6, 15)]


@pytest.mark.integration
@pytest.mark.parametrize("durable", [True, False], ids=["persistent", "transient"])
async def test_killed_router_loses_nothing(amqp_bus_factory: AmqpBusFactory, durable: bool) -> None:
    # Transient actions (PARLEY_DURABLE_ACTIONS=false) give up only broker restarts, not this.
    gateway, router_1, router_2 = [await amqp_bus_factory(durable_actions=durable) for _ in range(3)]
    shard = gateway.actions.shard_of("room-k")
    first, second = Recorder(auto_ack=False), Recorder()
    await router_1.actions.consume_shard(shard, first)
    # Router 2 waits as the inactive consumer (single active consumer) and must take over.
    await router_2.actions.consume_shard(shard, second)
    sent = [action("room-k", i) for i in range(25)]
    for envelope in sent:
        await gateway.actions.publish(envelope)
    await first.inbox.wait(25)
    for ack in first.acks[:5]:
        await ack()
    await asyncio.sleep(0.05)  # acks are fire-and-forget frames; let them reach the broker
    assert second.inbox.items == []
    await asyncio.wait_for(router_1.close(), TIMEOUT)  # the "kill": its connection goes away
    await router_1.close()  # idempotent
    await second.inbox.wait(20)
    assert second.ids == [e.frame_id for e in sent[5:]]


@pytest.mark.integration
@pytest.mark.parametrize("durable", [True, False])
async def test_actions_are_persistent_unless_configured_transient(
    amqp_bus_factory: AmqpBusFactory, amqp_url: str, durable: bool
) -> None:
    import aio_pika

    # On a quorum queue the delivery mode is only carried along: it keeps every message on disk.
    bus = await amqp_bus_factory(durable_actions=durable)
    await bus.actions.publish(action("room-d", 0))
    # basic.get is refused on a single-active-consumer quorum queue: consume the raw message
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(bus.actions.queue_name(bus.actions.shard_of("room-d")), passive=True)
        async with queue.iterator() as messages:
            message = await asyncio.wait_for(anext(aiter(messages)), TIMEOUT)
            expected = aio_pika.DeliveryMode.PERSISTENT if durable else aio_pika.DeliveryMode.NOT_PERSISTENT
            assert message.delivery_mode == expected
            await message.ack()
    finally:
        await connection.close()


@pytest.mark.integration
async def test_single_active_consumer_per_shard(amqp_bus_factory: AmqpBusFactory) -> None:
    bus_a, bus_b = await amqp_bus_factory(), await amqp_bus_factory()
    shard = bus_a.actions.shard_of("room-s")
    a, b = Recorder(), Recorder()
    consumer_a = await bus_a.actions.consume_shard(shard, a)
    consumer_b = await bus_b.actions.consume_shard(shard, b)
    for n in range(10):
        await bus_a.actions.publish(action("room-s", n))
    await a.inbox.wait(10)
    await asyncio.sleep(0.1)
    assert b.inbox.items == []
    await consumer_a.stop()
    for n in range(10, 20):
        await bus_b.actions.publish(action("room-s", n))
    await b.inbox.wait(10)
    assert b.ids == [f"room-s-{n}" for n in range(10, 20)]
    assert len(a.inbox.items) == 10
    await consumer_b.stop()


@pytest.mark.integration
async def test_malformed_action_is_dropped_and_consumer_continues(
    amqp_bus_factory: AmqpBusFactory, amqp_url: str
) -> None:
    import aio_pika
    import msgpack

    bus = await amqp_bus_factory()
    shard = bus.actions.shard_of("room-m")
    recorder = Recorder()
    consumer = await bus.actions.consume_shard(shard, recorder)
    await bus.actions.publish(action("room-m", 0))
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(bus.actions.exchange_name)
        for garbage in (b"\xc1 not msgpack", msgpack.packb([1, 2])):
            await exchange.publish(aio_pika.Message(garbage), routing_key=str(shard))
    finally:
        await connection.close()
    await bus.actions.publish(action("room-m", 1))
    await recorder.inbox.wait(2)
    assert recorder.ids == ["room-m-0", "room-m-1"]
    assert consumer.malformed == 2  # type: ignore[attr-defined]
    assert bus.actions.malformed == 2
    await consumer.stop()
    assert await queue_depth(amqp_url, bus.actions.queue_name(shard)) == 0  # rejected, not requeued


@pytest.mark.integration
async def test_concurrent_publishes_are_all_confirmed(amqp_bus_factory: AmqpBusFactory) -> None:
    bus = await amqp_bus_factory()
    recorder = Recorder()
    consumers = [await bus.actions.consume_shard(s, recorder) for s in range(bus.actions.shards)]
    sent = [action(f"room-{i % 37}", i) for i in range(400)]
    await asyncio.wait_for(asyncio.gather(*(bus.actions.publish(e) for e in sent)), TIMEOUT)
    await recorder.inbox.wait(400)
    assert sorted(recorder.ids) == sorted(e.frame_id for e in sent)
    for consumer in consumers:
        await consumer.stop()


@pytest.mark.integration
async def test_close_is_idempotent_and_prompt(amqp_bus_factory: AmqpBusFactory) -> None:
    bus = await amqp_bus_factory()
    await bus.start()  # idempotent too
    recorder = Recorder()
    await bus.actions.consume_shard(0, recorder)
    sub = await bus.fanout.subscribe("g1", recorder.inbox.room, None)
    await sub.add_room("r1")
    await asyncio.wait_for(bus.close(), TIMEOUT)
    await asyncio.wait_for(bus.close(), 1)
    with pytest.raises(RuntimeError):
        await bus.start()


@pytest.mark.integration
async def test_actions_published_together_travel_as_one_batch(amqp_bus_factory: AmqpBusFactory, amqp_url: str) -> None:
    """Concurrent publishes of one shard coalesce into one broker message; the consumer still
    sees every action, in publish order, and the broker message is acked only when all are."""
    from shared import metrics

    bus = await amqp_bus_factory()
    shard = bus.actions.shard_of("room-b")
    sent = [action("room-b", i) for i in range(300)]
    confirms_before = histogram_count(metrics.BUS_CONFIRM_SECONDS)
    await asyncio.gather(*(bus.actions.publish(envelope) for envelope in sent))
    assert await queue_depth(amqp_url, bus.actions.queue_name(shard)) == 1  # one broker message, not 300
    assert histogram_count(metrics.BUS_CONFIRM_SECONDS) == confirms_before + 1  # its confirm was timed

    first = Recorder(auto_ack=False)
    consumer = await bus.actions.consume_shard(shard, first)
    await first.inbox.wait(300)
    assert first.ids == [e.frame_id for e in sent]
    for ack in first.acks[:299]:  # all but one: the batch must stay unacked
        await ack()
    await consumer.stop()

    second = Recorder()
    consumer = await bus.actions.consume_shard(shard, second)
    await second.inbox.wait(300)  # the whole batch comes back (de-duplication is the router's)
    assert second.ids == [e.frame_id for e in sent]
    await consumer.stop()
    assert await queue_depth(amqp_url, bus.actions.queue_name(shard)) == 0
