"""Messages/s through the ``line`` front (seed 000) in distributed mode, and their latency.

Starts ``parley api``, ``--routers`` routers and ``--fronts`` ``parley front line`` replicas on
the real RabbitMQ and Redis (a throwaway namespace, deleted afterwards), creates ``--users``
accounts with CreateUser, logs each in on a replica (round robin) and has each send
``send <next user> ...`` in a closed loop at most ``--rate`` lines/s in total. The first second is not measured.
A send's latency is until its ``message sent to`` reply, which the front writes once the router has delivered the
message (rate limits, review and the recipient's inbox append included).

    .venv/bin/python -m bench.front_line --users 50 --rate 2000 --seconds 10

Prints JSON: sent/s, errors, latency p50/p99 (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from bench.fronts import AMQP, REDIS, add_cluster_arguments, quantile_ms
from parley.testing.cluster import new_namespace, running_cluster, suite_settings


async def _user(
    port: int, name: str, peer: str, window: tuple[float, float], interval: float, out: list[float], errors: list[str]
) -> None:
    warm, until = window
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def ask(line: str) -> str:
        writer.write(line.encode() + b"\r\n")
        return (await reader.readuntil(b"\r\n\r\n"))[:-4].decode()

    assert (await ask(f"auth {name} pw-{name}")).startswith(f"username {name} logged in")
    count = 0
    while time.monotonic() < until:
        started = time.monotonic()
        reply = await ask(f"send {peer} bench message {count}")
        if not reply.startswith("message sent"):
            errors.append(reply)
        elif started >= warm:  # the first second warms the routers' and fronts' caches up
            out.append(time.monotonic() - started)
        count += 1
        await asyncio.sleep(max(interval - (time.monotonic() - started), 0))
        if count % 50 == 0:
            await ask("inbox")  # keep the inboxes small, as real users would
    writer.close()


async def _run(ports: list[int], users: int, rate: float, seconds: float) -> dict[str, object]:
    latencies: list[float] = []
    errors: list[str] = []
    warm = time.monotonic() + 1.0
    window = (warm, warm + seconds)
    interval = users / rate if rate else 0.0
    await asyncio.gather(
        *(
            _user(
                ports[index % len(ports)], f"u{index}", f"u{(index + 1) % users}", window, interval, latencies, errors
            )
            for index in range(users)
        )
    )
    elapsed = seconds
    latencies.sort()

    return {
        "users": users,
        "fronts": len(ports),
        "offered_per_s": rate,
        "sent_per_s": round(len(latencies) / elapsed, 1),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "p50_ms": quantile_ms(latencies, 0.5),
        "p99_ms": quantile_ms(latencies, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rate", type=float, default=2000, help="lines/s in total (0: as fast as replies come)")
    add_cluster_arguments(parser)
    args = parser.parse_args()
    settings = suite_settings(new_namespace())
    env = {
        "PARLEY_CONNECTION_RATE_PER_SECOND": "100000",
        "PARLEY_ACCOUNT_SEND_MESSAGE_RATE": "100000",
        "PARLEY_LINE_ROOM_MESSAGE_RATE": "100000",
        "PARLEY_LOGIN_ATTEMPTS_PER_ADDRESS": "100000",
        "PARLEY_LOG_LEVEL": "warning",
    }
    settings = settings.with_(account_send_message_rate=100000)
    with running_cluster(settings, REDIS, AMQP, gateways=0, routers=args.routers, **env) as cluster:
        ports = [cluster.start_front(f"line{index}", "line") for index in range(args.fronts)]
        api = cluster.parleychat()
        for index in range(args.users):
            api.create_user(username=f"u{index}", password=f"pw-u{index}")
        print(json.dumps(asyncio.run(_run(ports, args.users, args.rate, args.seconds))))


if __name__ == "__main__":
    main()
