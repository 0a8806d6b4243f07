"""Batches and ack bookkeeping, pure (no I/O).

A queued delivery is acked once every batch holding one of its records was durably written;
:class:`Countdown` counts those parts. A :class:`Batch` is one destination stream's records
until it is full (records or bytes) or old enough (seconds), whichever comes first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from logger_sink.records import LogRecord


@dataclass(frozen=True, slots=True)
class BatchLimits:
    seconds: float = 1.0
    records: int = 1000
    bytes: int = 1 << 20


class Countdown:
    """Calls ``ack`` once ``done()`` was called as often as ``add()`` and ``seal()`` was called."""

    __slots__ = ("_ack", "_parts", "_sealed", "acked")

    def __init__(self, ack: Callable[[], Awaitable[None]]) -> None:
        self._ack = ack
        self._parts = 0
        self._sealed = False
        self.acked = False

    def add(self) -> None:
        self._parts += 1

    async def seal(self) -> None:
        """No more parts will be added (the delivery was routed to every stream)."""
        self._sealed = True
        await self._maybe_ack()

    async def done(self) -> None:
        self._parts -= 1
        await self._maybe_ack()

    async def _maybe_ack(self) -> None:
        if self._sealed and self._parts == 0 and not self.acked:
            self.acked = True
            await self._ack()


@dataclass(slots=True)
class Batch:
    opened: float  # monotonic seconds of the first record
    records: list[LogRecord] = field(default_factory=list)
    size: int = 0
    waiters: list[Countdown] = field(default_factory=list)  # one entry per delivery with records here

    def add(self, records: list[LogRecord], waiter: Countdown) -> None:
        self.records.extend(records)
        self.size += sum(len(record.line) for record in records)
        waiter.add()
        self.waiters.append(waiter)

    def full(self, limits: BatchLimits) -> bool:
        return len(self.records) >= limits.records or self.size >= limits.bytes

    def due(self, limits: BatchLimits, now: float) -> bool:
        return bool(self.records) and (self.full(limits) or now - self.opened >= limits.seconds)

    @property
    def body(self) -> bytes:
        return b"".join(record.line for record in self.records)

    @property
    def first_ms(self) -> int:
        return min((record.event_ms for record in self.records), default=0)
