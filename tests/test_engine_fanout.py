"""Fan-out conformance: the same tests against the memory and the Redis engines, plus Redis-only
tests (``integration``) for the subscriber connection: reconnects and failing listeners.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import cast

import pytest

from tests.engine_helpers import TIMEOUT, AmqpBusFactory, Inbox, MakeBus, kill_subscriber, until


async def test_rooms_reach_only_subscribed_rooms_in_order(make_bus: MakeBus) -> None:
    bus = await make_bus()
    inbox = Inbox()
    sub = await bus.fanout.subscribe("g1", inbox.room, None)
    await sub.add_room("r1")
    await sub.add_room("r1")  # idempotent: still one delivery per publish
    await bus.fanout.publish_rooms([("r1", b"1"), ("r2", b"x"), ("r1", b"2")])
    await bus.fanout.publish_rooms([])
    await bus.fanout.publish_rooms([("r1", b"3")])
    assert await inbox.wait(3) == [("r1", b"1"), ("r1", b"2"), ("r1", b"3")]
    await bus.fanout.publish_rooms([("r1", b"sentinel")])
    await inbox.wait(4)
    assert inbox.items == [("r1", b"1"), ("r1", b"2"), ("r1", b"3"), ("r1", b"sentinel")]
    await sub.close()


async def test_remove_room_stops_delivery(make_bus: MakeBus) -> None:
    bus = await make_bus()
    inbox = Inbox()
    sub = await bus.fanout.subscribe("g1", inbox.room, None)
    await sub.add_room("r1")
    await sub.add_room("r2")
    await bus.fanout.publish_rooms([("r1", b"before")])
    await inbox.wait(1)
    await sub.remove_room("r1")
    await sub.remove_room("r1")  # removing twice is harmless
    await bus.fanout.publish_rooms([("r1", b"after"), ("r2", b"sentinel")])
    await inbox.wait(2)
    assert inbox.items == [("r1", b"before"), ("r2", b"sentinel")]
    await sub.add_room("r1")  # and it can come back
    await bus.fanout.publish_rooms([("r1", b"again")])
    assert (await inbox.wait(3))[2] == ("r1", b"again")
    await sub.close()


async def test_two_gateways_in_one_room_both_receive(make_bus: MakeBus) -> None:
    bus_a, bus_b = await make_bus(), await make_bus()
    a, b, c = Inbox(), Inbox(), Inbox()
    sub_a = await bus_a.fanout.subscribe("ga", a.room, None)
    sub_b = await bus_b.fanout.subscribe("gb", b.room, None)
    sub_c = await bus_a.fanout.subscribe("gc", c.room, None)  # shares bus_a's connection with ga
    for sub in (sub_a, sub_b, sub_c):
        await sub.add_room("shared")
    await bus_b.fanout.publish_rooms([("shared", b"hello")])
    for inbox in (a, b, c):
        assert await inbox.wait(1) == [("shared", b"hello")]
    # One gateway leaving must not unsubscribe the other one on the same connection.
    await sub_a.remove_room("shared")
    await sub_c.add_room("other")
    await bus_a.fanout.publish_rooms([("shared", b"second"), ("other", b"sentinel")])
    await c.wait(3)
    await b.wait(2)
    # order holds per channel (two channels may live on two nodes of a Redis Cluster); a shares
    # c's connection to "shared", so a would have had "second" by now
    assert sorted(c.items[1:], key=repr) == [("other", b"sentinel"), ("shared", b"second")]
    assert b.items == [("shared", b"hello"), ("shared", b"second")]
    assert a.items == [("shared", b"hello")]
    for sub in (sub_a, sub_b, sub_c):
        await sub.close()


async def test_gateway_channel_reaches_only_that_gateway(make_bus: MakeBus) -> None:
    bus = await make_bus()
    g1, g2, rooms = Inbox(), Inbox(), Inbox()
    sub1 = await bus.fanout.subscribe("g1", rooms.room, g1.add)
    sub2 = await bus.fanout.subscribe("g2", None, g2.add)
    await bus.fanout.publish_gateway("g1", b"for-g1")
    await bus.fanout.publish_gateway("g3", b"for-nobody")
    await bus.fanout.publish_gateway("g2", b"for-g2")
    await bus.fanout.publish_gateway("g1", b"sentinel")
    assert await g1.wait(2) == [b"for-g1", b"sentinel"]
    assert await g2.wait(1) == [b"for-g2"]
    assert rooms.items == []
    await sub1.close()
    await sub2.close()


async def test_control_reaches_every_subscriber(make_bus: MakeBus) -> None:
    bus_a, bus_b = await make_bus(), await make_bus()
    a, b, gw = Inbox(), Inbox(), Inbox()
    sub_a = await bus_a.fanout.subscribe("router-1", None, None, a.add)
    sub_b = await bus_b.fanout.subscribe("g1", None, gw.add, b.add)
    await bus_a.fanout.publish_control(b"room_changed:r1")
    assert await a.wait(1) == [b"room_changed:r1"]
    assert await b.wait(1) == [b"room_changed:r1"]
    await bus_a.fanout.publish_gateway("g1", b"sentinel")
    await gw.wait(1)
    assert gw.items == [b"sentinel"]  # control did not leak onto the gateway channel
    await sub_a.close()
    await sub_b.close()


async def test_closed_subscription_receives_nothing(make_bus: MakeBus) -> None:
    bus = await make_bus()
    closed, live = Inbox(), Inbox()
    sub = await bus.fanout.subscribe("g1", closed.room, closed.add, closed.add)
    await sub.add_room("r1")
    await sub.close()
    witness = await bus.fanout.subscribe("g2", live.room, live.add, live.add)
    await witness.add_room("r1")
    await bus.fanout.publish_rooms([("r1", b"x")])
    await bus.fanout.publish_gateway("g1", b"x")
    await bus.fanout.publish_control(b"x")
    await bus.fanout.publish_gateway("g2", b"sentinel")
    await live.wait(3)
    assert closed.items == []
    await witness.close()


# --- Redis only: the subscriber connection -----------------------------------------------------
@pytest.mark.integration
async def test_pubsub_reader_survives_client_kill(amqp_bus_factory: AmqpBusFactory, redis_url: str) -> None:
    bus = await amqp_bus_factory()
    inbox, control = Inbox(), Inbox()
    sub = await bus.fanout.subscribe("g1", inbox.room, None, control.add)
    await sub.add_room("r1")
    await bus.fanout.publish_rooms([("r1", b"before")])
    await inbox.wait(1)

    assert await kill_subscriber(redis_url, bus.fanout.subscriber_name) == 1

    # Fan-out is at most once: messages sent while it reconnects are lost, so keep publishing
    # until the re-subscribed connection delivers again.
    async def until_delivered() -> None:
        n = 0
        while not any(data.startswith(b"after") for _, data in cast("list[tuple[str, bytes]]", inbox.items)):
            await bus.fanout.publish_rooms([("r1", b"after-%d" % n)])
            await bus.fanout.publish_control(b"ctl-%d" % n)
            n += 1
            await asyncio.sleep(0.02)

    await asyncio.wait_for(until_delivered(), TIMEOUT)
    await control.wait(1)  # every channel was re-subscribed, not only rooms
    assert bus.fanout.reconnects >= 1
    await sub.close()


@pytest.mark.integration
async def test_resubscribed_listener_hears_of_a_reconnect_before_its_messages(
    amqp_bus_factory: AmqpBusFactory, redis_url: str
) -> None:
    """What a gateway's gap fill relies on: told of the new subscription before any frame it
    carries, then when every channel is confirmed again."""
    bus = await amqp_bus_factory()
    inbox = Inbox()
    heard: list[tuple[str, int]] = []
    waiting: list[asyncio.Task[None]] = []

    def on_resubscribed(confirmed: Awaitable[None]) -> None:
        heard.append(("resubscribed", len(inbox.items)))

        async def confirm() -> None:
            await confirmed
            heard.append(("confirmed", len(inbox.items)))

        waiting.append(asyncio.create_task(confirm()))

    sub = await bus.fanout.subscribe("g1", inbox.room, None, on_resubscribed=on_resubscribed)
    await sub.add_room("r1")
    await bus.fanout.publish_rooms([("r1", b"before")])
    await inbox.wait(1)
    assert await kill_subscriber(redis_url, bus.fanout.subscriber_name) == 1
    await asyncio.wait_for(until(lambda: len(waiting) == 1), TIMEOUT)
    await asyncio.wait_for(waiting[0], TIMEOUT)
    assert heard == [("resubscribed", 1), ("confirmed", 1)]
    await bus.fanout.publish_rooms([("r1", b"after")])  # confirmed: a publish now is delivered
    await inbox.wait(2)
    await sub.close()


@pytest.mark.integration
async def test_bad_listener_does_not_stop_the_reader(amqp_bus_factory: AmqpBusFactory) -> None:
    bus = await amqp_bus_factory()
    good = Inbox()

    def bad(room_id: str, data: bytes) -> None:
        raise RuntimeError("listener bug")

    sub_bad = await bus.fanout.subscribe("g-bad", bad, None)
    sub_good = await bus.fanout.subscribe("g-good", good.room, None)
    await sub_bad.add_room("r1")
    await sub_good.add_room("r1")
    await bus.fanout.publish_rooms([("r1", b"1"), ("r1", b"2")])
    assert await good.wait(2) == [("r1", b"1"), ("r1", b"2")]
    await sub_bad.close()
    await sub_good.close()
