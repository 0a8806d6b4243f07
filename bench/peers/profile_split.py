"""Where a parley process's busy time goes: a py-spy raw profile split into the message path's parts.

    .venv/bin/python -m bench.peers.profile_split /tmp/prof/small-tree-router0.raw [...]

Each sample goes to the first part whose frames appear in its stack (order below); idle samples
(the event loop waiting, the metrics thread) are left out. ``bench.peers.compare --profile-dir``
prints this for every profile it takes.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("gateway: socket writes (fan-out)", ("write_frame (gateway/wire.py",)),
    ("gateway: fan-out decode, targeting, metrics", ("RoomFanout.on_room",)),
    # the subscriber's lean protocol dispatches from data_received (its listeners' work is counted above)
    ("gateway: Redis pub/sub read", ("_Pushes.data_received", "_Link._read_forever", "PubSubHub._read_forever")),
    ("gateway: ingest (WebSocket read, parse, session)", ("Gateway._handle", "protocol_handler")),
    ("router: room state, decide, encode, history, marks", ("Router._process (", "Router._drain")),
    # before the pipeline: a gateway's action publishes run inside a TurnBatcher too
    ("AMQP writes (publish, confirm, ack)", ("Connection.__writer", "basic_ack", "AckCoalescer", "_publish_batch")),
    ("Redis pipeline round trips", ("TurnBatcher._run", "_Replies.data_received", "RespConnection")),
    (
        "AMQP consume (aio-pika, aiormq)",
        ("Connection.__reader", "Channel._reader", "consumer (aio_pika", "AmqpShardConsumer"),
    ),
]
IDLE = ("_PollLikeSelector.select", "Runner.run (asyncio/runners.py)")


def split(path: Path) -> tuple[int, Counter[str]]:
    """(busy samples, samples per part) of one py-spy ``--format raw`` file."""
    parts: Counter[str] = Counter()
    busy = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        leaf = re.sub(r":\d+\)$", ")", stack.rsplit(";", 1)[-1])
        if leaf.startswith(IDLE):
            continue
        busy += int(count)
        name = next((name for name, keys in PARTS if any(key in stack for key in keys)), "other")
        parts[name] += int(count)
    return busy, parts


def report(path: Path) -> str:
    busy, parts = split(path)
    lines = [f"{path.name}: {busy} busy samples"]
    lines += [f"  {100 * n / busy:5.1f}%  {name}" for name, n in parts.most_common()] if busy else []
    return "\n".join(lines)


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(report(Path(argument)))
