"""Messages/s through the ``plic`` front (seed 004) in distributed mode, and their latency.

Starts ``parley api``, ``--routers`` routers and ``--fronts`` ``parley front plic`` replicas on
the real RabbitMQ and Redis (a throwaway namespace, deleted afterwards), creates ``--pairs`` plic
rooms with ``POST /rooms`` (two users each, HS256 JWTs signed with ``PARLEY_PLIC_JWT_SECRET``) and
connects the two users' clients (``/?token=``) on different replicas. Each client sends
``{"type":"SendMessage","data":{room_id, message, message_temp_id}}`` at most ``--rate`` messages/s
in total over all clients; the first second is not measured. A plic room keeps parley's default
room rate (10 messages/s), so the rooms are raised to at least ``--rate`` / 8 to stay under it. A
message's latency is from its send until the peer, on the other replica, receives
``MessageReceived`` (the router's rate limits, review and fan-out included).

    .venv/bin/python -m bench.front_plic --pairs 20 --rate 1000 --seconds 10

Prints JSON: sent, received/s, errors (``confirmed:false`` reasons counted), latency p50/p99 (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
import urllib.request
from collections import Counter

import jwt
from websockets.asyncio.client import ClientConnection, connect

from bench.fronts import AMQP, REDIS, add_cluster_arguments, quantile_ms
from parley.testing.cluster import new_namespace, running_cluster, suite_settings
from shared.protocol.models import DEFAULT_MAX_MESSAGE_RATE

SECRET = "plic-bench-jwt-secret-0123456789abcdef"
ROOM_SHARE = 0.8  # of a room's message rate the bench offers it, so jitter is not refused


def _token(user: str) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")


def _create_room(port: int, owner: str, peer: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/rooms",
        data=json.dumps({"users": [peer], "apartment_id": None}).encode(),
        headers={"Authorization": f"Bearer {_token(owner)}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return int(json.loads(response.read())["data"])


async def _receive(ws: ClientConnection, window: tuple[float, float], out: list[float], errors: Counter[str]) -> None:
    warm, _ = window
    async for raw in ws:
        frame = json.loads(raw)
        data = frame.get("data") or {}
        if frame.get("type") == "MessageReceived":
            started = float(data["message"].split()[0])
            if started >= warm:
                out.append(time.monotonic() - started)
        elif frame.get("type") == "MessageSentConfirmation" and not data.get("confirmed"):
            errors[data.get("reason", "")] += 1
        elif frame.get("type") == "Disconnection":
            errors[f"disconnected {data.get('code')}: {data.get('reason')}"] += 1


async def _send(ws: ClientConnection, room: int, window: tuple[float, float], interval: float, sent: list[int]) -> None:
    warm, until = window
    count = 0
    while time.monotonic() < until:
        started = time.monotonic()
        data = {"room_id": room, "message": f"{started} bench {count}", "message_temp_id": str(count)}
        await ws.send(json.dumps({"type": "SendMessage", "data": data}))
        sent[0] += started >= warm
        count += 1
        await asyncio.sleep(max(interval - (time.monotonic() - started), 0))


async def _run(ports: list[int], rooms: list[int], rate: float, seconds: float) -> dict[str, object]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    sent = [0]
    pairs = []
    for index, room in enumerate(rooms):
        a = await connect(f"ws://127.0.0.1:{ports[index % len(ports)]}/?token={_token(f'a{index}')}", max_queue=None)
        b = await connect(
            f"ws://127.0.0.1:{ports[(index + 1) % len(ports)]}/?token={_token(f'b{index}')}", max_queue=None
        )
        pairs.append((room, a, b))
    await asyncio.sleep(0.5)  # every replica's room subscription settles
    warm = time.monotonic() + 1.0
    window = (warm, warm + seconds)
    interval = 2 * len(rooms) / rate if rate else 0.0
    receivers = [asyncio.create_task(_receive(ws, window, latencies, errors)) for _, a, b in pairs for ws in (a, b)]
    await asyncio.gather(*(_send(ws, room, window, interval, sent) for room, a, b in pairs for ws in (a, b)))
    await asyncio.sleep(1.0)  # the last messages arrive
    for _, a, b in pairs:
        await a.close()
        await b.close()
    for task in receivers:
        task.cancel()
    latencies.sort()

    return {
        "pairs": len(rooms),
        "fronts": len(ports),
        "offered_per_s": rate,
        "sent": sent[0],
        "received_per_s": round(len(latencies) / seconds, 1),
        "errors": sum(errors.values()),
        "error_reasons": dict(errors.most_common(5)),
        "p50_ms": quantile_ms(latencies, 0.5),
        "p99_ms": quantile_ms(latencies, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=20, help="rooms, raised to --rate / 8 (the rooms' rate limit)")
    parser.add_argument("--rate", type=float, default=2000, help="messages/s in total (0: as fast as possible)")
    add_cluster_arguments(parser)
    args = parser.parse_args()
    pairs = max(args.pairs, math.ceil(args.rate / (DEFAULT_MAX_MESSAGE_RATE * ROOM_SHARE)))
    settings = suite_settings(new_namespace()).with_(account_send_message_rate=100000)
    env = {
        "PARLEY_CONNECTION_RATE_PER_SECOND": "100000",
        "PARLEY_ACCOUNT_SEND_MESSAGE_RATE": "100000",
        "PARLEY_APPROVAL_TIMEOUT": "0",
        "PARLEY_LOG_LEVEL": "warning",
    }
    with running_cluster(settings, REDIS, AMQP, gateways=0, routers=args.routers, **env) as cluster:
        front_env = {"PARLEY_PLIC_JWT_SECRET": SECRET}
        ports = [cluster.start_front(f"plic{index}", "plic", front_env) for index in range(args.fronts)]
        rooms = [_create_room(ports[index % len(ports)], f"a{index}", f"b{index}") for index in range(pairs)]
        print(json.dumps(asyncio.run(_run(ports, rooms, args.rate, args.seconds))))


if __name__ == "__main__":
    main()
