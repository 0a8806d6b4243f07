"""The ``Actions`` path: client actions from gateways and the control plane to the routers.

At least once, in order per shard. Rooms hash onto ``shards`` queues (:func:`shard_of`); a
router consumes a shard with one active consumer, so one room's actions are decided in the
order they were accepted. ``publish`` returns only once the broker has the action (publisher
confirm); the router acks it after its outcome was published, so a router killed mid-stream
loses nothing (redeliveries are de-duplicated by ``frame_id``).

Owns the interface only; engines implement it (``shared.engine.memory.actions``,
``shared.engine.amqp.actions``).
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

from shared.protocol.envelope import ActionEnvelope

Ack = Callable[[], Awaitable[None]]
"""Acknowledge one delivery: it will not come back."""

Settle = Callable[[], Awaitable[None]]
"""Finish (ack) what a released consumer's handler still has in flight."""

ActionHandler = Callable[[ActionEnvelope, Ack, bool], Awaitable[None]]
"""``(action, ack, redelivered)``."""


def shard_of(room_id: str, shards: int) -> int:
    """Stable across processes and restarts (unlike ``hash()``)."""
    return zlib.crc32(room_id.encode()) % shards


class ShardConsumer(ABC):
    """One shard's consumer, as :meth:`Actions.consume_shard` started it."""

    @abstractmethod
    async def stop(self, settle: Settle | None = None) -> None:
        """Stop taking actions from the shard. Actions handed to the handler but not yet acked
        stay unacked until ``stop`` returns and are then given back to the broker, in order.

        ``settle`` runs once nothing more will be handed to the handler and before anything is
        given back: the handler's owner finishes (acks) what it has in flight there, so the
        shard's next consumer does not get those actions again."""


class Actions(ABC):
    shards: int

    def shard_of(self, room_id: str) -> int:
        """The shard whose queue carries ``room_id``'s actions."""
        return shard_of(room_id, self.shards)

    @abstractmethod
    async def publish(self, action: ActionEnvelope) -> None:
        """Hand an action to its room's shard; returns once it is safely queued."""

    @abstractmethod
    async def consume_shard(self, shard: int, handler: ActionHandler) -> ShardConsumer:
        """Call ``handler(action, ack, redelivered)`` for each action of ``shard``, one call at a
        time in queue order. ``redelivered`` is True when the broker may have handed this action
        out before (only those can be duplicates). The handler should return quickly (queue the
        work) and call ``ack`` once the action's outcome is published. Unacked actions come back
        after a crash."""
