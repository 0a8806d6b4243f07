"""A router releasing a shard (rebalance, shutdown) finishes its batches in flight first.

Without that, the shard's next router gets the unacked copies of a batch that was published
but whose done marks were not written yet, and publishes it a second time."""

from __future__ import annotations

import asyncio

from router.worker import Router
from shared.clock import now_ms
from shared.config import Settings
from shared.engine.memory import MemoryBus, MemoryStore
from shared.engine.memory.done_marks import MemoryDoneMarks
from shared.engine.records import RecordKind
from shared.protocol.envelope import ActionEnvelope, Kind
from shared.protocol.models import Room


class DoneMarksHeld(MemoryDoneMarks):
    """Holds the router's done marks until ``release`` is set: a batch stays "in flight"
    between its publish and its acks, where a hand-over used to cut it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()

    async def mark(self, shard: int, generation: int, ids: list[str]) -> None:
        self.waiting.set()
        await self.release.wait()
        await super().mark(shard, generation, ids)


def _send(room_id: str, n: int) -> ActionEnvelope:
    return ActionEnvelope(Kind.SEND_MESSAGE, f"frame-{n}", room_id, received_ms=now_ms(), content=f"m{n}")


async def test_releasing_a_shard_waits_for_its_batch_in_flight_and_drops_what_did_not_start(
    settings: Settings,
) -> None:
    store, bus = MemoryStore(), MemoryBus(settings.shards)
    store.done_marks = marks = DoneMarksHeld()
    room = Room(id="handoverRoom", arn="arn:aws:ivschat:us-east-1:123456789012:room/handoverRoom")
    await store.records.create(RecordKind.ROOM, room.id, room.to_record(), now_ms(), 100)
    router = Router(settings, store, bus, all_shards=True)
    await router.start()
    try:
        await bus.actions.publish(_send(room.id, 1))
        await asyncio.wait_for(marks.waiting.wait(), 5)  # published, done marks not yet written
        await bus.actions.publish(_send(room.id, 2))  # queued behind it, not started
        for _ in range(100):
            if router._pending.get(room.id):
                break
            await asyncio.sleep(0.01)
        assert len(router._pending[room.id]) == 1

        release = asyncio.create_task(router._rebalance(set()))
        await asyncio.sleep(0.2)
        assert not release.done(), "the shard was released with a batch in flight"
        marks.release.set()
        await asyncio.wait_for(release, 5)

        shard = bus.actions.shard_of(room.id)
        assert await marks.check(shard, await marks.generation(shard), ["frame-1", "frame-2"]) == [True, False]
        assert room.id not in router._pending  # frame-2 is the next router's (it was never acked)
    finally:
        marks.release.set()
        await router.stop()
