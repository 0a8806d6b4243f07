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

Implementations: ``shared.engine.memory.done_marks`` (``parley dev``) and
``shared.engine.redis.done_marks``, where a shard's keys share one hash slot so each call stays
single-slot under Redis Cluster.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable

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
        """Mark ``ids`` in ``generation``. Ordered at call time (``shared.engine.store``): the
        marks never exist before the publish queued ahead."""

    @abstractmethod
    async def rotate(self, shard: int, generation: int) -> int:
        """If ``generation`` is current: make ``generation + 1`` current and drop
        ``generation - 1``. Returns the current generation either way."""

    @abstractmethod
    async def size(self, shard: int) -> int:
        """Marks the shard holds over all its generations (for tests and gauges)."""
