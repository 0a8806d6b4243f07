"""The ``Bus`` interface: how components hand work and frames to each other.

Three paths, each with its own guarantee:

- **actions** (gateway / control plane → router): at least once, in order per shard. Rooms hash
  onto ``shards`` queues (:func:`shard_of`); a router consumes a shard with one active consumer,
  so one room's actions are decided in the order they were accepted. ``publish_action`` returns
  only once the broker has the action (publisher confirm); the router acks it after the result
  was published, so a router killed mid-stream loses nothing (redeliveries are de-duplicated by
  ``frame_id``).
- **room and gateway channels** (router → gateways): at most once, pub/sub. A gateway subscribes
  to a room's channel while it holds a connection in that room, and always to its own channel.
- **control** (any → all): small notices such as "room X changed", at most once.
- **logs** (router → logger sink): at least once, one durable queue. ``publish_log`` returns once
  the broker has the ``RoomDelivery`` (publisher confirm), before the router acks the actions;
  the sink acks each one after every destination durably wrote it. A full log queue drops the
  newest delivery (counted) rather than slow the chat down.
- **reviews** (router → any reviewer → that router): request/reply, at most once, with a deadline.
  Reviewers compete for requests; a request nobody answers in time dies (the router then applies
  the room's fallback), so no reviewer process is needed for chat to flow.

Implementations: ``shared.engine.memory.MemoryBus`` (embedded mode) and ``shared.engine.amqp.bus.AmqpRedisBus``
(RabbitMQ for actions, Redis pub/sub for channels). Both pass ``tests/test_bus.py``.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

from shared.protocol.envelope import ActionEnvelope

Ack = Callable[[], Awaitable[None]]
ActionHandler = Callable[[ActionEnvelope, Ack, bool], Awaitable[None]]  # (action, ack, redelivered)
RoomListener = Callable[[str, bytes], None]  # (room_id, RoomDelivery bytes)
DataListener = Callable[[bytes], None]
LogHandler = Callable[[str, bytes, Ack], Awaitable[None]]  # (room_id, RoomDelivery bytes, ack)
ReviewHandler = Callable[[bytes], Awaitable[bytes | None]]  # review request bytes -> verdict bytes (None: no reply)


def shard_of(room_id: str, shards: int) -> int:
    """Stable across processes and restarts (unlike ``hash()``)."""
    return zlib.crc32(room_id.encode()) % shards


Settle = Callable[[], Awaitable[None]]


class ShardConsumer(ABC):
    @abstractmethod
    async def stop(self, settle: Settle | None = None) -> None:
        """Stop taking actions from the shard. Actions handed to the handler but not yet acked
        stay unacked until ``stop`` returns and are then given back to the broker, in order.

        ``settle`` runs once nothing more will be handed to the handler and before anything is
        given back: the handler's owner finishes (acks) what it has in flight there, so the
        shard's next consumer does not get those actions again."""


class LogConsumer(ABC):
    @abstractmethod
    async def stop(self) -> None:
        """Stop taking deliveries; the unacked ones go back to the queue, in order."""


class Subscription(ABC):
    """A gateway's live subscription: its own channel plus the rooms it adds."""

    @abstractmethod
    async def add_room(self, room_id: str) -> None: ...

    @abstractmethod
    async def remove_room(self, room_id: str) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...


class Bus(ABC):
    shards: int

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect and declare what is needed. Idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def shard_of(self, room_id: str) -> int:
        return shard_of(room_id, self.shards)

    # --- actions ------------------------------------------------------------------------
    @abstractmethod
    async def publish_action(self, action: ActionEnvelope) -> None:
        """Hand an action to its room's shard; returns once it is safely queued."""

    @abstractmethod
    async def consume_shard(self, shard: int, handler: ActionHandler) -> ShardConsumer:
        """Call ``handler(action, ack, redelivered)`` for each action of ``shard``, one call at a
        time in queue order. ``redelivered`` is True when the broker may have handed this action
        out before (only those can be duplicates). The handler should return quickly (queue the
        work) and call ``ack`` once the action's outcome is published. Unacked actions come back
        after a crash."""

    # --- fan-out ------------------------------------------------------------------------
    @abstractmethod
    def publish_rooms(self, deliveries: list[tuple[str, bytes]]) -> Awaitable[None]:
        """Publish ``(room_id, RoomDelivery bytes)`` pairs, in order, in one round trip.
        Ordered at call time with the Store's writes (see ``Store.history_append``)."""

    @abstractmethod
    def publish_gateway(self, gateway_id: str, data: bytes) -> Awaitable[None]:
        """Publish ``ConnectionNotice`` bytes to one gateway. Ordered at call time."""

    @abstractmethod
    async def publish_control(self, data: bytes) -> None: ...

    @abstractmethod
    async def subscribe(
        self,
        gateway_id: str,
        on_room: RoomListener | None,
        on_gateway: DataListener | None,
        on_control: DataListener | None = None,
    ) -> Subscription:
        """Start listening on ``gateway_id``'s channel and/or the control channel (whichever
        listener is given); rooms are added later with ``add_room``. Listeners are plain
        callables run on the event loop; they must not block."""

    # --- reviews ------------------------------------------------------------------------
    @abstractmethod
    async def request_review(self, data: bytes, timeout: float) -> bytes | None:
        """Send review request bytes (a room batch of ``ReviewRequest``s, see ``shared.protocol.review``) to
        one reviewer and return its reply bytes (the batch's verdicts), or None when no answer
        came within ``timeout`` seconds (or the bus failed). Never raises."""

    @abstractmethod
    async def serve_reviews(self, handler: ReviewHandler, concurrency: int) -> ShardConsumer:
        """Answer review requests with ``handler``, up to ``concurrency`` at once, competing with
        every other server of the namespace; ``stop()`` on the result stops taking new ones."""

    # --- chat logs ----------------------------------------------------------------------
    @abstractmethod
    async def publish_log(self, room_id: str, data: bytes) -> None:
        """Queue ``RoomDelivery`` bytes for the logger sink; returns once the broker has them.
        Never waits for a sink: when the log queue is over its bound the delivery is dropped
        and counted (``parley_log_deliveries_dropped``) instead."""

    @abstractmethod
    async def consume_logs(self, handler: LogHandler, prefetch: int = 1000) -> LogConsumer:
        """Call ``handler(room_id, data, ack)`` for each queued delivery, one call at a time in
        queue order, with at most ``prefetch`` unacked. Acks may come in any order; unacked
        deliveries come back after a crash. With several consumers only one is active at a
        time (the others are hot standbys), which keeps every room's log in order."""
