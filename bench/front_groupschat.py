"""Messages/s through the ``groupschat`` front (seed 003) in distributed mode, and their latency.

Starts ``parley api``, ``--routers`` routers and ``--fronts`` ``parley front groupschat`` replicas
on the real RabbitMQ and Redis (a throwaway namespace, deleted afterwards), registers two users
per pair (POST /users, /login, /sessions), makes a group of the two (POST /groups; the room's
maximumMessageRatePerSecond raised to 100 with UpdateRoom) and connects them to different
replicas. Each sends method 40 to the group at most ``--rate`` messages/s in total over all
clients; the first second is not measured. A message's latency is from its send until the peer,
on the other replica, receives the type 20 event (the router's rate limits, review, its append
to the members' event logs before publishing, and the fan-out included).

    .venv/bin/python -m bench.front_groupschat --pairs 40 --rate 2000 --seconds 10

Prints JSON: received/s, errors, latency p50/p99 (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp

from bench.fronts import AMQP, REDIS, add_cluster_arguments, quantile_ms
from parley.testing.cluster import new_namespace, running_cluster, suite_settings
from shared.protocol.ids import room_arn

SECRET = "groupschat-bench-secret-groupschat-bench-0123"


async def _post(http: aiohttp.ClientSession, url: str, body: Any, token: str = "") -> Any:
    headers = {"authorization": f"bearer {token}"} if token else {}
    async with http.post(url, json=body, headers=headers) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def _user(http: aiohttp.ClientSession, base: str, name: str) -> tuple[str, str, str]:
    user_id = (await _post(http, f"{base}/users", {"username": name, "password": "bench"}))["id"]
    token = (await _post(http, f"{base}/login", {"username": name, "password": "bench"}))["token"]
    url = (await _post(http, f"{base}/sessions", {}, token))["messaging_url"]
    return user_id, token, url


async def _receive(
    ws: aiohttp.ClientWebSocketResponse, window: tuple[float, float], out: list[float], errors: list[str]
) -> None:
    warm, _ = window
    async for msg in ws:
        event = json.loads(msg.data)
        if event["type"] == 20:
            sent = json.loads(event["body"]["data"])["t"]
            if sent >= warm:
                out.append(time.monotonic() - sent)
        elif event["type"] == 10:
            errors.append(event["body"]["message"])


async def _send(ws: aiohttp.ClientWebSocketResponse, group: str, window: tuple[float, float], interval: float) -> None:
    _, until = window
    count = 0
    while time.monotonic() < until:
        started = time.monotonic()
        data = json.dumps({"t": started, "n": count})
        await ws.send_str(json.dumps({"method": 40, "body": {"group_id": group, "data": data}}))
        count += 1
        await asyncio.sleep(max(interval - (time.monotonic() - started), 0))


async def _run(ports: list[int], pairs: int, rate: float, seconds: float, raise_rate: Any) -> dict[str, object]:
    latencies: list[float] = []
    errors: list[str] = []
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    async with aiohttp.ClientSession() as http:
        setup = []
        for index in range(pairs):
            here, there = bases[index % len(bases)], bases[(index + 1) % len(bases)]
            first, second = await _user(http, here, f"a{index}"), await _user(http, there, f"b{index}")
            body = {"name": f"bench{index}", "user_ids": [second[0]]}
            group = (await _post(http, f"{here}/groups", body, first[1]))["id"]
            raise_rate(group)
            setup.append((group, await http.ws_connect(first[2]), await http.ws_connect(second[2])))
        await asyncio.sleep(0.5)  # every replica's room subscription settles
        warm = time.monotonic() + 1.0
        window = (warm, warm + seconds)
        interval = 2 * pairs / rate if rate else 0.0
        receivers = [asyncio.create_task(_receive(ws, window, latencies, errors)) for _, a, b in setup for ws in (a, b)]
        await asyncio.gather(*(_send(ws, group, window, interval) for group, a, b in setup for ws in (a, b)))
        await asyncio.sleep(1.0)  # the last messages arrive
        for _, a, b in setup:
            await a.close()
            await b.close()
        for task in receivers:
            task.cancel()
    latencies.sort()

    return {
        "pairs": pairs,
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
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--rate", type=float, default=2000, help="messages/s in total (0: as fast as possible)")
    add_cluster_arguments(parser)
    args = parser.parse_args()
    settings = suite_settings(new_namespace()).with_(account_send_message_rate=100000)
    env = {
        "PARLEY_CONNECTION_RATE_PER_SECOND": "100000",
        "PARLEY_ACCOUNT_SEND_MESSAGE_RATE": "100000",
        "PARLEY_LOGIN_ATTEMPTS_PER_ADDRESS": "100000",
        "PARLEY_GROUPSCHAT_JWT_SECRET": SECRET,
        "PARLEY_LOG_LEVEL": "warning",
    }
    with running_cluster(settings, REDIS, AMQP, gateways=0, routers=args.routers, **env) as cluster:
        ports = [cluster.start_front(f"groupschat{index}", "groupschat") for index in range(args.fronts)]
        ivschat = cluster.ivschat()

        def raise_rate(group: str) -> None:
            arn = room_arn(settings.region, settings.account_id, group)
            ivschat.update_room(identifier=arn, maximumMessageRatePerSecond=100)

        print(json.dumps(asyncio.run(_run(ports, args.pairs, args.rate, args.seconds, raise_rate))))


if __name__ == "__main__":
    main()
