"""Redelivery de-duplication end to end on real RabbitMQ and Redis: a router that published a
batch but never got its acks to the broker (it died first) hands it back; however long the
shard then goes without a router, the next one skips every action of it, and its own rotations
keep the marks bounded."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from router.worker import Router
from shared.clock import now_ms
from shared.config import Settings
from shared.engine.bus import Bus
from shared.engine.records import RecordKind
from shared.engine.store import Store
from shared.protocol.envelope import ActionEnvelope, Kind, RoomDelivery
from shared.protocol.models import Room

pytestmark = pytest.mark.integration

WINDOW_MS = 300  # the tests' rotation window (production: router/dedupe.py DEFAULT_WINDOW_MS)


class DiesBeforeAcking(Router):
    """Publishes and marks like any router, but stalls before each ack until ``die()``: then its
    broker connection is gone and the acks fail. What a router killed between its done marks and
    its acks leaves behind, for every action at once."""

    def __init__(self, settings: Settings, store: Store, bus: Bus, **kwargs: Any) -> None:
        super().__init__(settings, store, bus, **kwargs)
        self.whole_bus = bus  # the router itself sees only the paths it uses
        self.dead = asyncio.Event()

    async def _on_action(self, action: ActionEnvelope, ack, redelivered: bool) -> None:
        async def never_arrives() -> None:
            await self.dead.wait()
            raise ConnectionError("the router died before its ack reached the broker")

        await super()._on_action(action, never_arrives, redelivered)

    async def die(self) -> None:
        await self.whole_bus.close()  # the broker sees the connection drop and requeues every unacked action
        self.dead.set()
        with contextlib.suppress(Exception):
            await self.stop()


def _send(room_id: str, n: int) -> ActionEnvelope:
    return ActionEnvelope(Kind.SEND_MESSAGE, f"m{n:03d}{room_id[:8]}", room_id, received_ms=now_ms(), content=str(n))


async def _collect(queue: asyncio.Queue[bytes], seconds: float) -> list[str]:
    ids: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            data = await asyncio.wait_for(queue.get(), left)
        except TimeoutError:
            break
        ids += [item.frame_id for item in RoomDelivery.decode(data).items]
    return ids


async def test_a_redelivery_after_a_long_outage_is_still_skipped_and_marks_stay_bounded(
    settings: Settings, redis_url: str, amqp_url: str
) -> None:
    from parley.runtime import real_backends

    settings = settings.with_(redis_url=redis_url, amqp_url=amqp_url)
    store, bus = real_backends(settings)
    dying_store, dying_bus = real_backends(settings)  # the first router's own connections
    for engine in (store, bus, dying_store, dying_bus):
        await engine.start()
    room = Room(
        id="dedupeRoom01",
        arn="arn:aws:ivschat:us-east-1:123456789012:room/dedupeRoom01",
        maximum_message_rate_per_second=100,
    )
    await store.records.create(RecordKind.ROOM, room.id, room.to_record(), now_ms(), 100)
    delivered: asyncio.Queue[bytes] = asyncio.Queue()
    subscription = await bus.fanout.subscribe("gw-test", lambda room_id, data: delivered.put_nowait(data), None)
    await subscription.add_room(room.id)
    shard = bus.actions.shard_of(room.id)
    routers: list[Router] = []
    try:
        first = DiesBeforeAcking(settings, dying_store, dying_bus, all_shards=True, dedupe_window_ms=WINDOW_MS)
        routers.append(first)
        await first.start()
        # One turn: one broker message, one room batch (its acks stall, so a later batch would wait).
        await asyncio.gather(*(bus.actions.publish(_send(room.id, n)) for n in range(20)))
        published = await _collect(delivered, 3.0)
        assert len(published) == 20
        await asyncio.sleep(WINDOW_MS * 5 / 1000)  # it keeps consuming: its unacked marks must not rotate away
        await first.die()

        await asyncio.sleep(WINDOW_MS * 10 / 1000)  # no router at all for ten windows
        second = Router(settings, store, bus, all_shards=True, dedupe_window_ms=WINDOW_MS)
        routers.append(second)
        await second.start()
        assert await _collect(delivered, 2.0) == []  # all 20 skipped: nothing published twice

        # New traffic goes on and is published once; rotations run and drop old generations.
        generation_before = await store.done_marks.generation(shard)
        for n in range(20, 140):
            await bus.actions.publish(_send(room.id, n))
            await asyncio.sleep(0.02)
        later = await _collect(delivered, 2.0)
        assert len(later) == 120 and len(set(later)) == 120
        assert await store.done_marks.generation(shard) > generation_before + 1
        assert await store.done_marks.size(shard) < 140  # marks follow the window, not every message
        await second.stop()

        # second acked everything it skipped: a third router gets nothing back.
        third = Router(settings, store, bus, all_shards=True, dedupe_window_ms=WINDOW_MS)
        routers.append(third)
        await third.start()
        assert await _collect(delivered, 1.5) == []
    finally:
        for router in routers:
            await router.stop()
        await subscription.close()
        await bus.destroy()
        await store.destroy()  # type: ignore[attr-defined]
        for engine in (bus, store, dying_store):
            await engine.close()
