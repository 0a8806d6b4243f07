"""Bus conformance: the same tests against ``MemoryBus`` and ``AmqpRedisBus``, plus real-only
tests (``integration``) for what only a broker can do: redelivery, single active consumer,
malformed messages, Redis reconnects.

To prove a message was *not* delivered, tests publish a sentinel on the same path afterwards and
wait for it: pub/sub keeps one publisher's order, so anything sent before it would have arrived.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable

import pytest

from shared.engine.bus import Ack, Bus, shard_of
from shared.engine.memory import MemoryBus
from shared.protocol.envelope import ActionEnvelope, Kind

MakeBus = Callable[[], Awaitable[Bus]]
TIMEOUT = 5.0


@pytest.fixture(params=["memory", "real"])
def make_bus(request: pytest.FixtureRequest) -> MakeBus:
    """``await make_bus()``: a bus of this test's deployment. Memory: every call is the same
    in-process bus (one process is the whole deployment); real: a new connection each call."""
    if request.param == "memory":
        bus = MemoryBus(shards=4)

        async def same() -> Bus:
            return bus

        return same
    factory: MakeBus = request.getfixturevalue("amqp_bus_factory")
    return factory


def action(room_id: str, n: int) -> ActionEnvelope:
    return ActionEnvelope(Kind.SEND_MESSAGE, f"{room_id}-{n}", room_id, received_ms=n, content=f"m{n}")


def rooms_on_shard(bus: Bus, shard: int, count: int) -> list[str]:
    found = [f"room-{i}" for i in range(10_000) if bus.shard_of(f"room-{i}") == shard]
    return found[:count]


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


# --- actions --------------------------------------------------------------------------------
def test_shard_of_is_stable() -> None:
    assert shard_of("room-a", 16) == zlib.crc32(b"room-a") % 16 == shard_of("room-a", 16)
    assert {shard_of(f"r{i}", 4) for i in range(100)} == {0, 1, 2, 3}


async def test_bus_shard_of_matches_function(make_bus: MakeBus) -> None:
    bus = await make_bus()
    assert bus.shards == 4
    assert all(bus.shard_of(f"r{i}") == shard_of(f"r{i}", 4) for i in range(50))


async def test_actions_of_one_room_arrive_in_order(make_bus: MakeBus) -> None:
    bus = await make_bus()
    recorder = Recorder()
    consumer = await bus.consume_shard(bus.shard_of("room-order"), recorder)
    sent = [action("room-order", i) for i in range(500)]
    for envelope in sent:
        await bus.publish_action(envelope)
    await recorder.inbox.wait(500)
    assert recorder.inbox.items == sent  # whole envelopes survive the wire, in order
    await consumer.stop()


async def test_actions_go_only_to_their_shard(make_bus: MakeBus) -> None:
    bus = await make_bus()
    mine, other = rooms_on_shard(bus, 1, 3), rooms_on_shard(bus, 2, 3)
    recorders = {1: Recorder(), 2: Recorder()}
    consumers = [await bus.consume_shard(s, r) for s, r in recorders.items()]
    await asyncio.gather(*(bus.publish_action(action(room, n)) for room in mine + other for n in range(5)))
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

    consumer = await bus.consume_shard(bus.shard_of("room-x"), slow)
    await asyncio.gather(*(bus.publish_action(action("room-x", n)) for n in range(30)))
    await asyncio.wait_for(_until(lambda: len(seen) == 30), TIMEOUT)
    assert peak == 1
    await consumer.stop()


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.01)


# --- fan-out --------------------------------------------------------------------------------
async def test_rooms_reach_only_subscribed_rooms_in_order(make_bus: MakeBus) -> None:
    bus = await make_bus()
    inbox = Inbox()
    sub = await bus.subscribe("g1", inbox.room, None)
    await sub.add_room("r1")
    await sub.add_room("r1")  # idempotent: still one delivery per publish
    await bus.publish_rooms([("r1", b"1"), ("r2", b"x"), ("r1", b"2")])
    await bus.publish_rooms([])
    await bus.publish_rooms([("r1", b"3")])
    assert await inbox.wait(3) == [("r1", b"1"), ("r1", b"2"), ("r1", b"3")]
    await bus.publish_rooms([("r1", b"sentinel")])
    await inbox.wait(4)
    assert inbox.items == [("r1", b"1"), ("r1", b"2"), ("r1", b"3"), ("r1", b"sentinel")]
    await sub.close()


async def test_remove_room_stops_delivery(make_bus: MakeBus) -> None:
    bus = await make_bus()
    inbox = Inbox()
    sub = await bus.subscribe("g1", inbox.room, None)
    await sub.add_room("r1")
    await sub.add_room("r2")
    await bus.publish_rooms([("r1", b"before")])
    await inbox.wait(1)
    await sub.remove_room("r1")
    await sub.remove_room("r1")  # removing twice is harmless
    await bus.publish_rooms([("r1", b"after"), ("r2", b"sentinel")])
    await inbox.wait(2)
    assert inbox.items == [("r1", b"before"), ("r2", b"sentinel")]
    await sub.add_room("r1")  # and it can come back
    await bus.publish_rooms([("r1", b"again")])
    assert (await inbox.wait(3))[2] == ("r1", b"again")
    await sub.close()


async def test_two_gateways_in_one_room_both_receive(make_bus: MakeBus) -> None:
    bus_a, bus_b = await make_bus(), await make_bus()
    a, b, c = Inbox(), Inbox(), Inbox()
    sub_a = await bus_a.subscribe("ga", a.room, None)
    sub_b = await bus_b.subscribe("gb", b.room, None)
    sub_c = await bus_a.subscribe("gc", c.room, None)  # shares bus_a's connection with ga
    for sub in (sub_a, sub_b, sub_c):
        await sub.add_room("shared")
    await bus_b.publish_rooms([("shared", b"hello")])
    for inbox in (a, b, c):
        assert await inbox.wait(1) == [("shared", b"hello")]
    # One gateway leaving must not unsubscribe the other one on the same connection.
    await sub_a.remove_room("shared")
    await sub_c.add_room("other")
    await bus_a.publish_rooms([("shared", b"second"), ("other", b"sentinel")])
    await c.wait(3)
    await b.wait(2)
    assert c.items[1:] == [("shared", b"second"), ("other", b"sentinel")]
    assert b.items == [("shared", b"hello"), ("shared", b"second")]
    assert a.items == [("shared", b"hello")]
    for sub in (sub_a, sub_b, sub_c):
        await sub.close()


async def test_gateway_channel_reaches_only_that_gateway(make_bus: MakeBus) -> None:
    bus = await make_bus()
    g1, g2, rooms = Inbox(), Inbox(), Inbox()
    sub1 = await bus.subscribe("g1", rooms.room, g1.add)
    sub2 = await bus.subscribe("g2", None, g2.add)
    await bus.publish_gateway("g1", b"for-g1")
    await bus.publish_gateway("g3", b"for-nobody")
    await bus.publish_gateway("g2", b"for-g2")
    await bus.publish_gateway("g1", b"sentinel")
    assert await g1.wait(2) == [b"for-g1", b"sentinel"]
    assert await g2.wait(1) == [b"for-g2"]
    assert rooms.items == []
    await sub1.close()
    await sub2.close()


async def test_control_reaches_every_subscriber(make_bus: MakeBus) -> None:
    bus_a, bus_b = await make_bus(), await make_bus()
    a, b, gw = Inbox(), Inbox(), Inbox()
    sub_a = await bus_a.subscribe("router-1", None, None, a.add)
    sub_b = await bus_b.subscribe("g1", None, gw.add, b.add)
    await bus_a.publish_control(b"room_changed:r1")
    assert await a.wait(1) == [b"room_changed:r1"]
    assert await b.wait(1) == [b"room_changed:r1"]
    await bus_a.publish_gateway("g1", b"sentinel")
    await gw.wait(1)
    assert gw.items == [b"sentinel"]  # control did not leak onto the gateway channel
    await sub_a.close()
    await sub_b.close()


async def test_closed_subscription_receives_nothing(make_bus: MakeBus) -> None:
    bus = await make_bus()
    closed, live = Inbox(), Inbox()
    sub = await bus.subscribe("g1", closed.room, closed.add, closed.add)
    await sub.add_room("r1")
    await sub.close()
    witness = await bus.subscribe("g2", live.room, live.add, live.add)
    await witness.add_room("r1")
    await bus.publish_rooms([("r1", b"x")])
    await bus.publish_gateway("g1", b"x")
    await bus.publish_control(b"x")
    await bus.publish_gateway("g2", b"sentinel")
    await live.wait(3)
    assert closed.items == []
    await witness.close()


# --- real only: what needs a broker ------------------------------------------------------------
def _histogram_count(histogram: object) -> float:
    """How many observations a prometheus_client Histogram has (its ``_count`` sample)."""
    for family in histogram.collect():  # type: ignore[attr-defined]
        for sample in family.samples:
            if sample.name.endswith("_count"):
                return float(sample.value)
    raise AssertionError("no _count sample")


async def _queue_depth(amqp_url: str, queue: str) -> int:
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0
    finally:
        await connection.close()


@pytest.mark.integration
async def test_unacked_actions_come_back_after_stop_in_order(amqp_bus_factory, amqp_url: str) -> None:  # type: ignore[no-untyped-def]
    bus = await amqp_bus_factory()
    shard = bus.shard_of("room-r")
    sent = [action("room-r", i) for i in range(40)]
    for envelope in sent:
        await bus.publish_action(envelope)

    first = Recorder(auto_ack=False)
    consumer = await bus.consume_shard(shard, first)
    await first.inbox.wait(10)
    for ack in first.acks[:10]:  # the first 10 are done; the rest were handed out, never acked
        await ack()
    await _until(lambda: len(first.inbox.items) >= 12)
    await consumer.stop()
    handed_out = len(first.inbox.items)
    await first.acks[-1]()  # an ack after stop is a harmless no-op: the message comes back

    second = Recorder()
    consumer = await bus.consume_shard(shard, second)
    await second.inbox.wait(30)
    await asyncio.sleep(0.1)
    assert second.ids == [e.frame_id for e in sent[10:]]  # nothing lost, nothing acked repeated
    assert handed_out >= 12
    await consumer.stop()
    assert await _queue_depth(amqp_url, bus.queue_name(shard)) == 0


@pytest.mark.integration
async def test_hand_over_settles_in_flight_work_and_keeps_order(amqp_bus_factory) -> None:  # type: ignore[no-untyped-def]
    """A router releasing a shard finishes (acks) its batches in flight during ``settle``; the
    next router gets only the rest, before anything published meanwhile (no early switch of the
    single active consumer, which would reorder the room)."""
    gateway, router_1, router_2 = [await amqp_bus_factory() for _ in range(3)]
    shard = gateway.shard_of("room-h")
    first, second = Recorder(auto_ack=False), Recorder()
    consumer = await router_1.consume_shard(shard, first)
    await router_2.consume_shard(shard, second)  # waits, inactive
    for n in range(10):
        await gateway.publish_action(action("room-h", n))
    await first.inbox.wait(10)

    async def settle() -> None:  # the first 6 were "in flight": they finish during the hand-over
        for n in range(10, 15):  # meanwhile the room goes on
            await gateway.publish_action(action("room-h", n))
        await asyncio.sleep(0.2)
        for ack in first.acks[:6]:
            await ack()

    await consumer.stop(settle=settle)
    await second.inbox.wait(9)
    await asyncio.sleep(0.1)
    assert second.ids == [f"room-h-{n}" for n in range(6, 15)]


@pytest.mark.integration
@pytest.mark.parametrize("durable", [True, False], ids=["persistent", "transient"])
async def test_killed_router_loses_nothing(amqp_bus_factory, durable: bool) -> None:  # type: ignore[no-untyped-def]
    # Transient actions (PARLEY_DURABLE_ACTIONS=false) give up only broker restarts, not this.
    gateway, router_1, router_2 = [await amqp_bus_factory(durable_actions=durable) for _ in range(3)]
    shard = gateway.shard_of("room-k")
    first, second = Recorder(auto_ack=False), Recorder()
    await router_1.consume_shard(shard, first)
    # Router 2 waits as the inactive consumer (single active consumer) and must take over.
    await router_2.consume_shard(shard, second)
    sent = [action("room-k", i) for i in range(25)]
    for envelope in sent:
        await gateway.publish_action(envelope)
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
    amqp_bus_factory, amqp_url: str, durable: bool
) -> None:  # type: ignore[no-untyped-def]
    import aio_pika

    bus = await amqp_bus_factory(durable_actions=durable)
    await bus.publish_action(action("room-d", 0))
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(bus.queue_name(bus.shard_of("room-d")), passive=True)
        message = await queue.get(timeout=5)
        assert message is not None
        expected = aio_pika.DeliveryMode.PERSISTENT if durable else aio_pika.DeliveryMode.NOT_PERSISTENT
        assert message.delivery_mode == expected
        await message.ack()
    finally:
        await connection.close()


@pytest.mark.integration
async def test_single_active_consumer_per_shard(amqp_bus_factory) -> None:  # type: ignore[no-untyped-def]
    bus_a, bus_b = await amqp_bus_factory(), await amqp_bus_factory()
    shard = bus_a.shard_of("room-s")
    a, b = Recorder(), Recorder()
    consumer_a = await bus_a.consume_shard(shard, a)
    consumer_b = await bus_b.consume_shard(shard, b)
    for n in range(10):
        await bus_a.publish_action(action("room-s", n))
    await a.inbox.wait(10)
    await asyncio.sleep(0.1)
    assert b.inbox.items == []
    await consumer_a.stop()
    for n in range(10, 20):
        await bus_b.publish_action(action("room-s", n))
    await b.inbox.wait(10)
    assert b.ids == [f"room-s-{n}" for n in range(10, 20)]
    assert len(a.inbox.items) == 10
    await consumer_b.stop()


@pytest.mark.integration
async def test_malformed_action_is_dropped_and_consumer_continues(amqp_bus_factory, amqp_url: str) -> None:  # type: ignore[no-untyped-def]
    import aio_pika
    import msgpack

    bus = await amqp_bus_factory()
    shard = bus.shard_of("room-m")
    recorder = Recorder()
    consumer = await bus.consume_shard(shard, recorder)
    await bus.publish_action(action("room-m", 0))
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(f"{bus._ns}.actions")
        for garbage in (b"\xc1 not msgpack", msgpack.packb([1, 2])):
            await exchange.publish(aio_pika.Message(garbage), routing_key=str(shard))
    finally:
        await connection.close()
    await bus.publish_action(action("room-m", 1))
    await recorder.inbox.wait(2)
    assert recorder.ids == ["room-m-0", "room-m-1"]
    assert consumer.malformed == 2  # type: ignore[attr-defined]
    assert bus.malformed == 2
    await consumer.stop()
    assert await _queue_depth(amqp_url, bus.queue_name(shard)) == 0  # rejected, not requeued


@pytest.mark.integration
async def test_concurrent_publishes_are_all_confirmed(amqp_bus_factory) -> None:  # type: ignore[no-untyped-def]
    bus = await amqp_bus_factory()
    recorder = Recorder()
    consumers = [await bus.consume_shard(s, recorder) for s in range(bus.shards)]
    sent = [action(f"room-{i % 37}", i) for i in range(400)]
    await asyncio.wait_for(asyncio.gather(*(bus.publish_action(e) for e in sent)), TIMEOUT)
    await recorder.inbox.wait(400)
    assert sorted(recorder.ids) == sorted(e.frame_id for e in sent)
    for consumer in consumers:
        await consumer.stop()


@pytest.mark.integration
async def test_pubsub_reader_survives_client_kill(amqp_bus_factory, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    import redis.asyncio as aioredis

    bus = await amqp_bus_factory()
    inbox, control = Inbox(), Inbox()
    sub = await bus.subscribe("g1", inbox.room, None, control.add)
    await sub.add_room("r1")
    await bus.publish_rooms([("r1", b"before")])
    await inbox.wait(1)

    admin = aioredis.Redis.from_url(redis_url)
    try:
        # Kill only this test's subscriber connection (by its client name), so concurrent users
        # of the same Redis keep theirs; for this connection it is `CLIENT KILL TYPE pubsub`.
        name = f"parley:{bus._ns}:pubsub"
        ids = [c["id"] for c in await admin.client_list(_type="pubsub") if c.get("name") == name]
        assert len(ids) == 1
        assert await admin.execute_command("CLIENT", "KILL", "ID", ids[0], "TYPE", "pubsub") == 1
    finally:
        await admin.aclose()

    # Fan-out is at most once: messages sent while it reconnects are lost, so keep publishing
    # until the re-subscribed connection delivers again.
    async def until_delivered() -> None:
        n = 0
        while not any(data.startswith(b"after") for _, data in inbox.items):  # type: ignore[misc]
            await bus.publish_rooms([("r1", b"after-%d" % n)])
            await bus.publish_control(b"ctl-%d" % n)
            n += 1
            await asyncio.sleep(0.02)

    await asyncio.wait_for(until_delivered(), TIMEOUT)
    await control.wait(1)  # every channel was re-subscribed, not only rooms
    assert bus._hub is not None and bus._hub.reconnects >= 1
    await sub.close()


@pytest.mark.integration
async def test_bad_listener_does_not_stop_the_reader(amqp_bus_factory) -> None:  # type: ignore[no-untyped-def]
    bus = await amqp_bus_factory()
    good = Inbox()

    def bad(room_id: str, data: bytes) -> None:
        raise RuntimeError("listener bug")

    sub_bad = await bus.subscribe("g-bad", bad, None)
    sub_good = await bus.subscribe("g-good", good.room, None)
    await sub_bad.add_room("r1")
    await sub_good.add_room("r1")
    await bus.publish_rooms([("r1", b"1"), ("r1", b"2")])
    assert await good.wait(2) == [("r1", b"1"), ("r1", b"2")]
    await sub_bad.close()
    await sub_good.close()


@pytest.mark.integration
async def test_close_is_idempotent_and_prompt(amqp_bus_factory) -> None:  # type: ignore[no-untyped-def]
    bus = await amqp_bus_factory()
    await bus.start()  # idempotent too
    recorder = Recorder()
    await bus.consume_shard(0, recorder)
    sub = await bus.subscribe("g1", recorder.inbox.room, None)
    await sub.add_room("r1")
    await asyncio.wait_for(bus.close(), TIMEOUT)
    await asyncio.wait_for(bus.close(), 1)
    with pytest.raises(RuntimeError):
        await bus.start()


@pytest.mark.integration
async def test_actions_published_together_travel_as_one_batch(amqp_bus_factory, amqp_url: str) -> None:  # type: ignore[no-untyped-def]
    """Concurrent publishes of one shard coalesce into one broker message; the consumer still
    sees every action, in publish order, and the broker message is acked only when all are."""
    from shared import metrics

    bus = await amqp_bus_factory()
    shard = bus.shard_of("room-b")
    sent = [action("room-b", i) for i in range(300)]
    confirms_before = _histogram_count(metrics.BUS_CONFIRM_SECONDS)
    await asyncio.gather(*(bus.publish_action(envelope) for envelope in sent))
    assert await _queue_depth(amqp_url, bus.queue_name(shard)) == 1  # one broker message, not 300
    assert _histogram_count(metrics.BUS_CONFIRM_SECONDS) == confirms_before + 1  # its confirm was timed

    first = Recorder(auto_ack=False)
    consumer = await bus.consume_shard(shard, first)
    await first.inbox.wait(300)
    assert first.ids == [e.frame_id for e in sent]
    for ack in first.acks[:299]:  # all but one: the batch must stay unacked
        await ack()
    await consumer.stop()

    second = Recorder()
    consumer = await bus.consume_shard(shard, second)
    await second.inbox.wait(300)  # the whole batch comes back (de-duplication is the router's)
    assert second.ids == [e.frame_id for e in sent]
    await consumer.stop()
    assert await _queue_depth(amqp_url, bus.queue_name(shard)) == 0
