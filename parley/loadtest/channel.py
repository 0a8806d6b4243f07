"""How the coordinator and its workers talk: one queue up, three events down.

Worker → coordinator: ``(kind, worker_id, payload)`` tuples on :attr:`Channel.out`, the payload
one of the dicts below (plain types: they pickle across processes). Coordinator → workers: the
``connect``, ``start`` and ``stop`` events. Within one process (``--procs 1``) these are a
SimpleQueue and threading Events, across processes the multiprocessing equivalents; both sides
poll them, so the same worker coroutine serves both cases.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from parley.loadtest.histogram import HistogramState

if TYPE_CHECKING:
    from multiprocessing.context import SpawnContext

Message = tuple[str, int, Any]
"""``(kind, worker_id, payload)``; kinds in order: ``ready`` (None), ``connected``
(:class:`Connected`), ``snapshot`` (:class:`Snapshot`, every 0.25 s), ``sent`` (a last
:class:`Snapshot` when sending ended), ``final`` (:class:`Final`), and ``failed`` (a str) instead
of any of them when a worker process dies."""


class Connected(TypedDict):
    connect_seconds: float


class Snapshot(TypedDict):
    open: int
    sent: int
    delivered: int
    errors: int
    window: HistogramState  # latencies since the previous snapshot
    room_sent: list[int]
    room_rejected: list[int]
    min_received: dict[int, int]  # room → the fewest messages any of this worker's clients in it got


class Final(TypedDict):
    senders: int
    connections: int
    open_at_end: int
    connect_failures: dict[str, int]
    connect_seconds: float
    send_seconds: float
    sent: int
    delivered: int
    delivered_in_window: int
    room_sent: list[int]
    room_rejected: list[int]
    received: list[tuple[int, int]]  # (room, messages received), one per connected client
    latency: HistogramState
    errors_by_code: dict[str, int]
    disconnects: dict[str, int]


class MessageQueue(Protocol):
    def put(self, item: Message) -> None: ...

    def get_nowait(self) -> Message: ...


class Event(Protocol):
    def is_set(self) -> bool: ...

    def set(self) -> None: ...


@dataclass(frozen=True)
class Channel:
    out: MessageQueue
    connect: Event
    start: Event
    stop: Event

    @classmethod
    def in_process(cls) -> Channel:
        return cls(queue.SimpleQueue(), threading.Event(), threading.Event(), threading.Event())

    @classmethod
    def across_processes(cls, ctx: SpawnContext) -> Channel:
        return cls(ctx.Queue(), ctx.Event(), ctx.Event(), ctx.Event())

    def release(self) -> None:
        """Set every event, so no worker is left waiting whatever state the run ended in."""
        self.stop.set()
        self.connect.set()
        self.start.set()
