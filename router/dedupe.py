"""Redelivery de-duplication for one shard this router consumes: when a generation may go.

The marks themselves live in ``shared/engine/done_marks.py`` (generations of ids, dropped whole). This
module decides *when* the oldest kept generation can be dropped without ever forgetting an
action that may still come back. An action comes back (``redelivered``) only if it was
delivered and not acked when its consumer's channel closed. So:

- **This router's own actions.** A mark in generation ``g - 1`` may be dropped once every action
  this router marked in ``g - 1`` was acked: until then its channel could close and hand it back.
- **A previous owner's actions.** When a router dies (process crash: its TCP connection closes at
  once; host loss: RabbitMQ's heartbeat timeout, 60 s by default), the broker requeues its unacked
  actions at the head of the queue, and only then makes the next consumer active
  (single-active-consumer). So they are the first deliveries the next owner receives, however
  long the shard went without a consumer: the next owner starts counting at its own first
  delivery, and rotates only after ``window_ms`` of consuming with every redelivered action it
  received acked. ``window_ms`` covers the requeued actions beyond its first prefetch window
  (they follow as it acks) with a wide margin.
- **No consumer, no rotation.** Generations change only while a router actively consumes the
  shard, so marks survive an outage of any length with no router running.
- **Acks leave on the next loop turn.** ``Ack`` only queues the ack (``shared/engine/amqp/acks.py``
  coalesces them per turn), so the condition must hold for one whole check interval before a
  rotation: by then every counted ack has been written to the broker.

Each generation lives at least ``window_ms`` and the checks look at its neighbours, so the marks
kept are about two to three windows of the shard's actions (``window_ms`` x rate x 3 at most).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Ack = Callable[[], Awaitable[None]]

DEFAULT_WINDOW_MS = 15_000


@dataclass(slots=True)
class ShardDedupe:
    shard: int
    window_ms: int = DEFAULT_WINDOW_MS
    generation: int | None = None  # read at this consumer's first batch (after its first delivery)
    generation_since_ms: int = 0
    first_delivery_ms: int | None = None
    unacked_redelivered: int = 0
    unacked_marks: Counter[int] = field(default_factory=Counter)  # generation → marked, not yet acked
    clear_since_ms: int | None = None  # since when nothing blocks the next rotation

    def delivered(self, redelivered: bool, ack: Ack, now_ms: int) -> TrackedAck:
        """An action arrived on this shard: start counting, and track it until it is acked."""
        if self.first_delivery_ms is None:
            self.first_delivery_ms = now_ms
        if redelivered:
            self.unacked_redelivered += 1
        return TrackedAck(self, ack, redelivered)

    def loaded(self, generation: int, now_ms: int) -> None:
        self.generation, self.generation_since_ms = generation, now_ms

    def rotation_due(self, now_ms: int) -> bool:
        """May generation ``g - 1`` be dropped now (see the module docstring)?"""
        if self.generation is None or self.first_delivery_ms is None:
            return False
        blocked = self.unacked_redelivered > 0 or self.unacked_marks[self.generation - 1] > 0
        if blocked:
            self.clear_since_ms = None
            return False
        if self.clear_since_ms is None:
            self.clear_since_ms = now_ms  # must still hold at the next check (acks in flight)
            return False
        return (
            now_ms - self.clear_since_ms > 0
            and now_ms - self.first_delivery_ms >= self.window_ms
            and now_ms - self.generation_since_ms >= self.window_ms
        )

    def rotated(self, generation: int, now_ms: int) -> None:
        self.unacked_marks.pop((self.generation or 0) - 1, None)
        self.loaded(generation, now_ms)
        self.clear_since_ms = None


class TrackedAck:
    """An action's ack that also tells its shard's :class:`ShardDedupe` when it was given."""

    __slots__ = ("_dedupe", "_ack", "_redelivered", "_marked_in")

    def __init__(self, dedupe: ShardDedupe, ack: Ack, redelivered: bool) -> None:
        self._dedupe = dedupe
        self._ack = ack
        self._redelivered = redelivered
        self._marked_in: int | None = None

    def marked(self, generation: int) -> None:
        """Its done mark was queued in ``generation`` (again, if a retried batch marks it anew)."""
        if self._marked_in is not None:
            self._dedupe.unacked_marks[self._marked_in] -= 1
        self._marked_in = generation
        self._dedupe.unacked_marks[generation] += 1

    async def __call__(self) -> None:
        await self._ack()
        dedupe = self._dedupe
        if self._redelivered:
            dedupe.unacked_redelivered -= 1
            self._redelivered = False
        if self._marked_in is not None:
            dedupe.unacked_marks[self._marked_in] -= 1
            self._marked_in = None
