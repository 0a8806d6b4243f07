"""Where an idle connection's memory goes: tracemalloc of an embedded gateway holding N idle IVS
connections, the clients in a child process so that their allocations stay out.

    .venv/bin/python -m bench.connection_memory [--connections 2000] [--top 15]

Prints Python heap per connection and the allocation sites that grew most, per connection.
(``bench.cluster_bench --rate 0`` reports RSS per connection of real gateway processes.)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import tracemalloc

import uvloop

from parley.embedded import Node
from shared.clock import now_ms
from shared.config import Settings
from shared.engine.memory import MemoryBus, MemoryStore
from shared.engine.records import RecordKind
from shared.protocol import tokens
from shared.protocol.ids import new_id, room_arn
from shared.protocol.models import Room

CLIENTS = r"""
import asyncio, json, sys, uvloop
from websockets.asyncio.client import connect
async def main():
    url, chat_tokens = sys.argv[1], json.loads(sys.stdin.read())
    held = [await connect(url, subprotocols=[t], max_queue=None) for t in chat_tokens]
    print(len(held), flush=True)
    await asyncio.sleep(3600)
uvloop.run(main())
"""


async def main(connections: int, top: int) -> None:
    settings = Settings(token_secret="bench-connection-memory-secret-0123456789", ping_interval=60)
    node = Node(settings, MemoryStore(), MemoryBus(settings.shards), router_all_shards=True)
    await node.start(gateway_port=0)
    assert node.gateway is not None
    rooms = []
    for _ in range(20):
        room_id = new_id()
        room = Room(id=room_id, arn=room_arn(settings.region, settings.account_id, room_id))
        await node.store.records.create(RecordKind.ROOM, room_id, room.to_record(), now_ms(), 100)
        rooms.append(room)
    chat_tokens = [
        tokens.mint(
            settings.token_secret_bytes,
            room_id=rooms[i % len(rooms)].id,
            user_id=f"u{i}",
            capabilities=["SEND_MESSAGE"],
            attributes={"displayName": f"User {i}"},
            now_ms=now_ms(),
            session_minutes=60,
        )[0]
        for i in range(connections)
    ]
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    clients = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENTS, f"ws://127.0.0.1:{node.gateway.port}/",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert clients.stdin is not None and clients.stdout is not None
    clients.stdin.write(json.dumps(chat_tokens).encode())
    clients.stdin.close()
    await clients.stdout.readline()
    await asyncio.sleep(1)  # joins settle
    gc.collect()
    stats = tracemalloc.take_snapshot().compare_to(before, "lineno")
    print(f"python heap per connection: {sum(s.size_diff for s in stats) / connections / 1024:.1f} KiB ({connections})")
    for stat in stats[:top]:
        print(
            f"{stat.size_diff / connections:7.0f} B {stat.count_diff / connections:5.1f} objects  {stat.traceback[0]}"
        )
    clients.kill()
    await clients.wait()
    await node.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    uvloop.run(main(args.connections, args.top))
