"""The process's one ordered Redis pipeline: Store writes and Bus publishes of a loop turn go out
together and run in the order they were started (real Redis, real RabbitMQ)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from router.worker import Router
from shared.clock import now_ms
from shared.config import Settings
from shared.engine.records import RecordKind
from shared.engine.redis.pipeline import RedisPipeline
from shared.protocol.envelope import ActionEnvelope, Kind, RoomDelivery
from shared.protocol.models import Room

pytestmark = pytest.mark.integration


def _record_runs(pipeline: RedisPipeline) -> list[list[tuple[Any, ...]]]:
    """Every pipeline sent to Redis, as its list of commands (the class's own seam)."""
    runs: list[list[tuple[Any, ...]]] = []
    run = pipeline._run

    async def recording(commands: list[tuple[Any, ...]]) -> list[Any]:
        runs.append(list(commands))
        return await run(commands)

    pipeline._run = recording  # type: ignore[method-assign]
    return runs


async def test_commands_of_one_turn_run_in_one_pipeline_in_submission_order(redis_store) -> None:
    pipeline: RedisPipeline = redis_store.pipeline
    runs = _record_runs(pipeline)
    key = "parley-pipeline-test:" + redis_store._ns
    reader = pipeline.script("return redis.call('GET', KEYS[1])")
    await pipeline.load_scripts()
    written = pipeline.submit([("SET", key, b"first")])  # started first, awaited last
    read = pipeline.submit([("EVALSHA", reader.sha, 1, key)])
    overwritten = pipeline.submit([("SET", key, b"second"), ("GET", key)])
    assert await read == [b"first"]
    assert (await overwritten)[1] == b"second"
    assert await written == [b"OK"]  # raw RESP replies (shared/engine/redis/resp.py)
    assert len(runs) == 1 and [command[0] for command in runs[0]] == ["SET", "EVALSHA", "SET", "GET"]
    await redis_store.redis.delete(key)


async def test_a_router_batch_is_one_round_trip_history_then_publish_then_done_marks(
    settings: Settings, redis_url: str, amqp_url: str
) -> None:
    from parley.runtime import real_backends

    settings = settings.with_(redis_url=redis_url, amqp_url=amqp_url)
    store, bus = real_backends(settings)
    await store.start()
    await bus.start()
    router = Router(settings, store, bus, all_shards=True)
    room = Room(id="pipelineRoom", arn="arn:aws:ivschat:us-east-1:123456789012:room/pipelineRoom")
    await store.records.create(RecordKind.ROOM, room.id, room.to_record(), now_ms(), 100)
    delivered: asyncio.Queue[bytes] = asyncio.Queue()
    subscription = await bus.fanout.subscribe("gw-test", lambda room_id, data: delivered.put_nowait(data), None)
    await subscription.add_room(room.id)
    await router.start()
    try:
        runs = _record_runs(store.pipeline)  # type: ignore[attr-defined]
        action = ActionEnvelope(Kind.SEND_MESSAGE, "frame-p1", room.id, received_ms=now_ms(), content="hello")
        await bus.actions.publish(action)
        item = RoomDelivery.decode(await asyncio.wait_for(delivered.get(), 10)).items[0]
        assert item.frame_id == "frame-p1"
        for _ in range(100):  # the done mark lands in the same round trip, just after
            shard = bus.actions.shard_of(room.id)
            if await store.done_marks.check(shard, await store.done_marks.generation(shard), ["frame-p1"]) == [True]:
                break
            await asyncio.sleep(0.02)
        batch_runs = [run for run in runs if any(command[0] == "PUBLISH" for command in run)]
        assert len(batch_runs) == 1
        names = [command[0] for command in batch_runs[0]]
        assert names == ["EVALSHA", "PUBLISH", "SADD"]  # history, publish, done marks: one pipeline
        assert await store.history.latest(room.id, 10, 3_600_000) != []
    finally:
        await router.stop()
        await subscription.close()
        await bus.destroy()
        await store.destroy()  # type: ignore[attr-defined]
        await bus.close()
        await store.close()
