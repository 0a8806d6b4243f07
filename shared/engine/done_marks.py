"""Done marks: which actions of a shard were already published, in generations dropped whole.

A router marks every action it publishes, before acking it; a redelivered action (its router
died before the ack reached the broker) is skipped if marked. The marks of one shard live in
numbered *generations*: marks go into the current one; a check looks at the generations next
to it (``g - 1``, ``g``, ``g + 1``); a rotation makes ``g + 1`` current and deletes ``g - 1``
whole. So memory follows how many actions a few generations hold, not the message rate times
a TTL (one key per message for 15 minutes was 480 000 keys after 8 minutes at 1 000 msg/s).

Nothing here expires by time: *when* a generation may be dropped is the router's decision
(``router/dedupe.py``), taken from what it knows is unacked, so marks outlive any outage with
no router running. Only the shard's active consumer rotates, and rotation is a compare-and-set
on the generation number, so two routers in a handover cannot rotate twice.

Two implementations side by side: memory (``parley dev``) and Redis, where a shard's keys share
one hash slot (``{ns}:done:{<shard>}:…``) so each call stays single-slot under Redis Cluster.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.engine.redis.pipeline import RedisPipeline

# The generations a check consults around the current one: a router that read ``g`` may find
# marks a previous owner wrote just before or after its own last rotation.
NEIGHBOURS = (-1, 0, 1)


class DoneMarks(ABC):
    @abstractmethod
    async def generation(self, shard: int) -> int:
        """The shard's current generation (0 before its first rotation)."""

    @abstractmethod
    async def check(self, shard: int, generation: int, ids: list[str]) -> list[bool]:
        """For each id: is it marked in ``generation`` or a neighbour of it."""

    @abstractmethod
    def mark(self, shard: int, generation: int, ids: list[str]) -> Awaitable[None]:
        """Mark ``ids`` in ``generation``. Ordered at call time with the Store's other writes
        (see ``Store.history_append``): the marks never exist before the publish queued ahead."""

    @abstractmethod
    async def rotate(self, shard: int, generation: int) -> int:
        """If ``generation`` is current: make ``generation + 1`` current and drop
        ``generation - 1``. Returns the current generation either way."""

    @abstractmethod
    async def size(self, shard: int) -> int:
        """Marks the shard holds over all its generations (for tests and gauges)."""


class MemoryDoneMarks(DoneMarks):
    def __init__(self) -> None:
        self._current: dict[int, int] = {}
        self._marks: dict[tuple[int, int], set[str]] = {}

    async def generation(self, shard: int) -> int:
        return self._current.get(shard, 0)

    async def check(self, shard: int, generation: int, ids: list[str]) -> list[bool]:
        sets = [self._marks.get((shard, generation + offset), set()) for offset in NEIGHBOURS]
        return [any(i in marks for marks in sets) for i in ids]

    async def mark(self, shard: int, generation: int, ids: list[str]) -> None:
        self._marks.setdefault((shard, generation), set()).update(ids)

    async def rotate(self, shard: int, generation: int) -> int:
        if self._current.get(shard, 0) == generation:
            self._current[shard] = generation + 1
            self._marks.pop((shard, generation - 1), None)
        return self._current.get(shard, 0)

    async def size(self, shard: int) -> int:
        return sum(len(marks) for (s, _), marks in self._marks.items() if s == shard)


# KEYS: the generation counter, the set of generation - 1. ARGV: the expected generation.
_ROTATE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then return current end
redis.call('SET', KEYS[1], current + 1)
redis.call('UNLINK', KEYS[2])
return current + 1
"""


class RedisDoneMarks(DoneMarks):
    """Keys: ``{ns}:done:{<shard>}:gen`` (the counter) and ``{ns}:done:{<shard>}:<g>`` (a set)."""

    def __init__(self, pipeline: RedisPipeline, namespace: str) -> None:
        self._pipeline = pipeline
        self._ns = namespace
        self._rotate = pipeline.script(_ROTATE)

    def _counter(self, shard: int) -> str:
        return f"{self._ns}:done:{{{shard}}}:gen"

    def _set(self, shard: int, generation: int) -> str:
        return f"{self._ns}:done:{{{shard}}}:{generation}"

    async def generation(self, shard: int) -> int:
        (raw,) = await self._pipeline.submit([("GET", self._counter(shard))])
        return int(raw or 0)

    async def check(self, shard: int, generation: int, ids: list[str]) -> list[bool]:
        if not ids:
            return []
        commands = [("SMISMEMBER", self._set(shard, generation + offset), *ids) for offset in NEIGHBOURS]
        replies = await self._pipeline.submit(commands)
        return [any(reply[index] for reply in replies) for index in range(len(ids))]

    def mark(self, shard: int, generation: int, ids: list[str]) -> Awaitable[None]:
        from shared.engine.redis.pipeline import completion

        if not ids:
            return completion(None)
        return completion(self._pipeline.submit([("SADD", self._set(shard, generation), *ids)]))

    async def rotate(self, shard: int, generation: int) -> int:
        keys = (self._counter(shard), self._set(shard, generation - 1))
        (current,) = await self._pipeline.submit([("EVALSHA", self._rotate.sha, 2, *keys, generation)])
        return int(current)

    async def size(self, shard: int) -> int:
        current = await self.generation(shard)
        replies = await self._pipeline.submit(
            [("SCARD", self._set(shard, current + offset)) for offset in (-2, *NEIGHBOURS)]
        )
        return sum(int(count) for count in replies)
