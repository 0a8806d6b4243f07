"""Client CPU per command of the process's ordered Redis pipeline: redis-py's ``Pipeline`` beside
the lean RESP connection the pipeline uses (``shared/engine/redis/resp.py``).

    .venv/bin/python -m bench.redis_pipeline [--turns 3000] [--redis-url redis://127.0.0.1:6379/0]

Each turn is one round trip of a router's per-message commands (SADD done marks, PUBLISH of the
room's frames, XADD of history), 1 and 10 messages per round trip; prints microseconds of this
process's CPU (``time.process_time``) per command, each variant twice, interleaved. Redis's own CPU
is not in it. Keys ``bench-pipeline:*`` are deleted afterwards.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop
from redis.asyncio import Redis

from shared.engine.redis.pipeline import endpoint_of
from shared.engine.redis.resp import RespConnection

Command = tuple[Any, ...]


async def main(turns: int, redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    endpoint = endpoint_of(redis)
    assert endpoint is not None, "the lean connection needs a redis:// or unix:// URL"
    lean = RespConnection(endpoint)

    async def redis_py(commands: list[Command]) -> Any:
        async with redis.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return await pipe.execute(raise_on_error=False)

    variants: dict[str, Callable[[list[Command]], Awaitable[Any]]] = {"redis-py": redis_py, "lean": lean.execute}
    one = [
        ("SADD", "bench-pipeline:done", "x" * 12),
        ("PUBLISH", "bench-pipeline:room", b"y" * 300),
        ("XADD", "bench-pipeline:history", "MAXLEN", "~", "100", "*", "f", b"z" * 300),
    ]
    try:
        for messages in (1, 10):
            commands = one * messages
            for _ in range(2):
                for name, run in variants.items():
                    started = time.process_time()
                    for _ in range(turns):
                        await run(commands)
                    per_command = (time.process_time() - started) / turns / len(commands) * 1e6
                    print(f"{name:8} {len(commands):2} commands per round trip: {per_command:5.1f} µs CPU per command")
    finally:
        lean.close()
        await redis.delete("bench-pipeline:done", "bench-pipeline:history")
        await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=3000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    uvloop.run(main(args.turns, args.redis_url))
