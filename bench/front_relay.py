"""Messages/s through the ``relay`` front (seed 001) in distributed mode, and their latency.

Starts ``parley api``, ``--routers`` routers and ``--fronts`` ``parley front relay`` replicas on
the real RabbitMQ and Redis (a throwaway namespace, deleted afterwards), creates ``--pairs`` rooms
(maximumMessageRatePerSecond 100) and in each connects two relay clients on different replicas.
Each client sends ``{"to":<peer id>,"data":{…}}`` to its peer at most ``--rate`` messages/s in
total over all clients; the first second is not measured. A message's latency is from its send
until the peer, on the other replica, receives ``{"from":…,"data":…}`` (the router's rate
limits, review and fan-out included).

    .venv/bin/python -m bench.front_relay --pairs 20 --rate 2000 --seconds 10

Prints JSON: received/s, errors, latency p50/p99 (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from websockets.asyncio.client import ClientConnection, connect

from bench.fronts import AMQP, REDIS, add_cluster_arguments, quantile_ms
from parley.testing.cluster import new_namespace, running_cluster, suite_settings


async def _open(port: int, app: str) -> tuple[ClientConnection, str]:
    ws = await connect(f"ws://127.0.0.1:{port}/{app}", max_queue=None)
    greeting = json.loads(await ws.recv())
    return ws, greeting["id"]


async def _receive(ws: ClientConnection, window: tuple[float, float], out: list[float], errors: list[str]) -> None:
    warm, _ = window
    async for raw in ws:
        frame = json.loads(raw)
        data = frame.get("data")
        if isinstance(data, dict) and "t" in data:
            if data["t"] >= warm:
                out.append(time.monotonic() - data["t"])
        elif "error" in frame:
            errors.append(frame["error"])


async def _send(ws: ClientConnection, peer: str, window: tuple[float, float], interval: float) -> None:
    _, until = window
    count = 0
    while time.monotonic() < until:
        started = time.monotonic()
        await ws.send(json.dumps({"to": peer, "data": {"t": started, "n": count}}))
        count += 1
        await asyncio.sleep(max(interval - (time.monotonic() - started), 0))


async def _run(ports: list[int], rooms: list[str], rate: float, seconds: float) -> dict[str, object]:
    latencies: list[float] = []
    errors: list[str] = []
    pairs = []
    for index, room in enumerate(rooms):
        a = await _open(ports[index % len(ports)], room)
        b = await _open(ports[(index + 1) % len(ports)], room)
        pairs.append((a, b))
    await asyncio.sleep(0.5)  # every replica's room subscription settles
    warm = time.monotonic() + 1.0
    window = (warm, warm + seconds)
    senders = 2 * len(rooms)
    interval = senders / rate if rate else 0.0
    receivers = [asyncio.create_task(_receive(ws, window, latencies, errors)) for (a, b) in pairs for ws, _ in (a, b)]
    await asyncio.gather(
        *(_send(a[0], b[1], window, interval) for a, b in pairs),
        *(_send(b[0], a[1], window, interval) for a, b in pairs),
    )
    await asyncio.sleep(1.0)  # the last messages arrive
    for a, b in pairs:
        await a[0].close()
        await b[0].close()
    for task in receivers:
        task.cancel()
    latencies.sort()

    return {
        "pairs": len(rooms),
        "fronts": len(ports),
        "offered_per_s": rate,
        "received_per_s": round(len(latencies) / seconds, 1),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "p50_ms": quantile_ms(latencies, 0.5),
        "p99_ms": quantile_ms(latencies, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--rate", type=float, default=2000, help="messages/s in total (0: as fast as possible)")
    add_cluster_arguments(parser)
    args = parser.parse_args()
    settings = suite_settings(new_namespace()).with_(account_send_message_rate=100000)
    env = {
        "PARLEY_CONNECTION_RATE_PER_SECOND": "100000",
        "PARLEY_ACCOUNT_SEND_MESSAGE_RATE": "100000",
        "PARLEY_APPROVAL_TIMEOUT": "0",
        "PARLEY_LOG_LEVEL": "warning",
    }
    with running_cluster(settings, REDIS, AMQP, gateways=0, routers=args.routers, **env) as cluster:
        ports = [cluster.start_front(f"relay{index}", "relay") for index in range(args.fronts)]
        ivschat = cluster.ivschat()
        rooms = [
            ivschat.create_room(name=f"bench{index}", maximumMessageRatePerSecond=100)["id"]
            for index in range(args.pairs)
        ]
        print(json.dumps(asyncio.run(_run(ports, rooms, args.rate, args.seconds))))


if __name__ == "__main__":
    main()
