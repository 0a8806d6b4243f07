"""Subscriber CPU per pub/sub message: the hub's lean hiredis-fed connection
(``shared/engine/redis/pushes.py`` ``PushConnection``) beside redis-py's connection (the TLS path,
``RedisPyWire``), receiving the same stream.

    .venv/bin/python -m bench.redis_subscriber [--messages 50000] [--channels 50] [--size 300]

A child process publishes ``--messages`` messages of ``--size`` bytes round-robin over
``--channels`` channels (pipelined, 100 per round trip); this process subscribes through a
``PubSubHub`` with a listener that counts, and prints microseconds of its own CPU
(``time.process_time``) per message received, each variant twice, interleaved. Redis's CPU and
the publisher's are not in it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import uvloop

from shared.engine.redis import subscriber
from shared.engine.redis.subscriber import PubSubHub

PUBLISHER = """
import asyncio, sys
from shared.engine.redis.resp import Endpoint, RespConnection
async def main(url_port, messages, channels, size):
    connection = RespConnection(Endpoint(port=url_port))
    body = b"x" * size
    for start in range(0, messages, 100):
        stop = min(start + 100, messages)
        await connection.execute([("PUBLISH", f"bench-sub:{i % channels}", body) for i in range(start, stop)])
    connection.close()
asyncio.run(main(*map(int, sys.argv[1:])))
"""


async def run(variant: str, port: int, messages: int, channels: int, size: int) -> float:
    real_endpoint = subscriber.pool_endpoint
    if variant == "redis-py":
        subscriber.pool_endpoint = lambda pool: None  # take the TLS path
    try:
        hub = PubSubHub(f"redis://127.0.0.1:{port}/0", "parley:bench:pubsub")
        await hub.start()
    finally:
        subscriber.pool_endpoint = real_endpoint
    received = 0
    done = asyncio.get_running_loop().create_future()

    def listener(_: Any) -> None:
        nonlocal received
        received += 1
        if received == messages and not done.done():
            done.set_result(None)

    for index in range(channels):
        await hub.add(f"bench-sub:{index}".encode(), listener)
    started = time.process_time()
    publisher = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PUBLISHER, str(port), str(messages), str(channels), str(size)
    )
    await asyncio.wait_for(done, 120)
    cpu = time.process_time() - started
    await publisher.wait()
    await hub.close()
    return cpu / messages * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--port", type=int, default=6379)
    args = parser.parse_args()
    for _ in range(2):
        for variant in ("lean", "redis-py"):
            per_message = uvloop.run(run(variant, args.port, args.messages, args.channels, args.size))
            print(f"{variant:8} {per_message:5.2f} µs subscriber CPU per message ({args.messages} × {args.size} B)")


if __name__ == "__main__":
    main()
