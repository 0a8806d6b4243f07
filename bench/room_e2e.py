"""End-to-end throughput of ONE room in distributed mode.

Starts ``parley api``, two ``parley gateway`` and N ``parley router`` processes on the real
RabbitMQ and Redis (a throwaway namespace), creates a room, lifts its message rate cap (IVS caps
rooms at 100 msg/s; the point here is what the pipeline sustains), then drives senders on
gateway A and receivers spread over both gateways at a target rate for a fixed time.

Prints one JSON object: offered and delivered messages/s, deliveries/s over all receivers,
send→receive latency percentiles (ms, from the frame's SendTime) and lost messages.

    .venv/bin/python bench/room_e2e.py --rate 2000 --seconds 10 --senders 20 --receivers 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Coroutine
from typing import Any

from parley.testing.chatclient import ChatClient
from parley.testing.cluster import BENCH_ENV, running_cluster, throwaway_settings
from shared.clock import now_ms
from shared.config import Settings
from shared.engine.records import RecordKind
from shared.protocol.envelope import ControlNotice, ControlTopic
from shared.protocol.models import Room
from shared.protocol.timestamps import parse_iso


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def count_errors(client: ChatClient, stop: asyncio.Event, errors: dict[int, int]) -> None:
    """Read a sender's frames until ``stop``, counting its ERROR frames by code."""
    while not stop.is_set():
        try:
            frame = json.loads(await asyncio.wait_for(client.ws.recv(), 0.5))
        except TimeoutError:
            continue
        if frame["Type"] == "ERROR":
            errors[frame["ErrorCode"]] = errors.get(frame["ErrorCode"], 0) + 1


async def send_paced(senders: list[ChatClient], rate: float, seconds: float) -> tuple[int, float]:
    """SEND_MESSAGE round-robin over ``senders`` at ``rate``/s for ``seconds``; returns how many
    were sent and the ``perf_counter`` time sending started."""
    sent = 0
    started = time.perf_counter()
    interval = 1.0 / rate
    deadline = started + seconds
    while (now := time.perf_counter()) < deadline:
        due = int((now - started) / interval) + 1
        while sent < due:
            await senders[sent % len(senders)].ws.send(
                json.dumps({"Action": "SEND_MESSAGE", "RequestId": str(sent), "Content": f"m{sent}"})
            )
            sent += 1
        await asyncio.sleep(0.001)
    return sent, started


async def lift_rate_cap(settings: Settings, redis_url: str, amqp_url: str, room_id: str, rate: int) -> None:
    from shared.engine.amqp import AmqpRedisBus
    from shared.engine.redis.store import RedisStore

    store = RedisStore(redis_url, settings.namespace)
    bus = AmqpRedisBus(
        amqp_url, redis_url, settings.namespace, shards=settings.shards, queue_type=settings.amqp_queue_type
    )
    await store.start()
    await bus.start()
    record = await store.records.get(RecordKind.ROOM, room_id)
    assert record is not None
    room = Room.from_record(record)
    room.maximum_message_rate_per_second = rate
    await store.records.put(RecordKind.ROOM, room_id, room.to_record(), room.update_ms)
    await bus.fanout.publish_control(ControlNotice(ControlTopic.ROOM_CHANGED, room_id).encode())
    await bus.close()
    await store.close()


async def run(args: argparse.Namespace) -> dict[str, object]:
    settings = throwaway_settings(args.shards)
    with running_cluster(
        settings, args.redis_url, args.amqp_url, gateways=2, routers=args.routers, **BENCH_ENV
    ) as cluster:
        ivschat = cluster.ivschat()
        room = ivschat.create_room(name="bench", maximumMessageRatePerSecond=100)
        await lift_rate_cap(settings, args.redis_url, args.amqp_url, room["id"], 1_000_000)

        def token(user: str, caps: list[str]) -> str:
            return ivschat.create_chat_token(roomIdentifier=room["arn"], userId=user, capabilities=caps)["token"]

        senders = [
            await ChatClient.open(cluster.ws_url("gwA"), token(f"s{i}", ["SEND_MESSAGE"])) for i in range(args.senders)
        ]
        receivers = [
            await ChatClient.open(cluster.ws_url("gwA" if i % 2 == 0 else "gwB"), token(f"r{i}", []))
            for i in range(args.receivers)
        ]
        await asyncio.sleep(1.0)

        latencies: list[float] = []
        received = [0] * len(receivers)
        errors: dict[int, int] = {}
        stop_reading = asyncio.Event()

        async def read(index: int, client: ChatClient) -> None:
            ws = client.ws
            while not stop_reading.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                frame = json.loads(raw)
                if frame["Type"] == "MESSAGE":
                    received[index] += 1
                    if index == 0:
                        latencies.append(now_ms() - parse_iso(frame["SendTime"]))

        readers = [asyncio.create_task(read(i, c)) for i, c in enumerate(receivers)]
        readers += [asyncio.create_task(count_errors(c, stop_reading, errors)) for c in senders]

        sent, started = await send_paced(senders, args.rate, args.seconds)
        send_seconds = time.perf_counter() - started
        # wait for the tail
        tail_deadline = time.perf_counter() + 15
        while min(received) < sent - sum(errors.values()) and time.perf_counter() < tail_deadline:
            await asyncio.sleep(0.1)
        total_seconds = time.perf_counter() - started
        stop_reading.set()
        await asyncio.gather(*readers)
        for client in senders + receivers:
            await client.close()
        accepted = sent - sum(errors.values())
        return {
            "offered_msgs_per_s": round(sent / send_seconds),
            "sent": sent,
            "errors_by_code": errors,
            "receivers": len(receivers),
            "delivered_per_receiver_min": min(received),
            "lost_per_receiver_max": accepted - min(received),
            "delivered_msgs_per_s": round(min(received) / total_seconds),
            # senders are in the room too and get every message (the echo), like receivers
            "deliveries_per_s": round((sum(received) + min(received) * len(senders)) / total_seconds),
            "connections_in_room": len(senders) + len(receivers),
            "latency_ms_p50": round(percentile(latencies, 50), 1),
            "latency_ms_p95": round(percentile(latencies, 95), 1),
            "latency_ms_p99": round(percentile(latencies, 99), 1),
            "routers": args.routers,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=1000, help="offered messages per second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--receivers", type=int, default=4)
    parser.add_argument("--routers", type=int, default=1)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    print_result(run(parser.parse_args()))


def print_result(bench: Coroutine[Any, Any, dict[str, object]]) -> None:
    """Run a benchmark coroutine on uvloop (asyncio without it) and print its result as JSON."""
    try:
        import uvloop

        result = uvloop.run(bench)
    except ImportError:
        result = asyncio.run(bench)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
