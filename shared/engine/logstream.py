"""The ``LogStream`` path: delivered room frames from routers to the logger sink.

At least once, one durable stream. ``publish`` returns once the broker has the ``RoomDelivery``
(publisher confirm), before the router acks the actions; the sink acks each delivery after
every destination durably wrote it. A full stream drops the newest delivery (counted as
``parley_log_deliveries_dropped``) rather than slow the chat down.

Owns the interface only; engines implement it (``shared.engine.memory.logstream``,
``shared.engine.amqp.logstream``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

from shared.engine.actions import Ack

LogHandler = Callable[[str, bytes, Ack], Awaitable[None]]
"""``(room_id, RoomDelivery bytes, ack)``."""


class LogConsumer(ABC):
    """A running :meth:`LogStream.consume`."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop taking deliveries; the unacked ones go back to the stream, in order."""


class LogStream(ABC):
    @abstractmethod
    async def publish(self, room_id: str, data: bytes) -> None:
        """Queue ``RoomDelivery`` bytes for the logger sink; returns once the broker has them.
        Never waits for a sink: when the stream is over its bound the delivery is dropped and
        counted instead."""

    @abstractmethod
    async def consume(self, handler: LogHandler, prefetch: int = 1000) -> LogConsumer:
        """Call ``handler(room_id, data, ack)`` for each queued delivery, one call at a time in
        queue order, with at most ``prefetch`` unacked. Acks may come in any order; unacked
        deliveries come back after a crash. With several consumers only one is active at a
        time (the others are hot standbys), which keeps every room's log in order."""
