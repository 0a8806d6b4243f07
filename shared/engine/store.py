"""The ``Store``: state every replica of every component must agree on, one concern per attribute.

Each concern is a small interface of its own module: :class:`~shared.engine.records.Records`,
:class:`~shared.engine.marks.Marks`, :class:`~shared.engine.done_marks.DoneMarks`,
:class:`~shared.engine.history.History`, :class:`~shared.engine.presence.Presence`,
:class:`~shared.engine.members.Members` and :class:`~shared.engine.counters.Counters`. A
``Store`` holds one of each, sharing one connection, and adds what spans concerns: the
lifecycle and :meth:`Store.get_with_claimed`. Components declare the concerns they use as a
``Protocol`` of their own (``<component>/ports.py``) and never see the rest.

Implementations: ``shared.engine.memory.MemoryStore`` (embedded mode, tests) and
``shared.engine.redis.RedisStore`` (production). Both pass the same conformance suites,
``tests/test_engine_<concern>.py``.

**Ordered at call time.** The writes documented so (``History.append``/``remove``,
``Marks.claim_many``, ``DoneMarks.mark``, ``Counters.report``/``reserve``/``unreserve``) take
effect in the order they are called, with each other and with ``Fanout.publish_rooms`` and
``Fanout.publish_gateway`` of the same process, when their awaitables are awaited in
that order too: a caller may start several and await them afterwards, which lets a pipelined
implementation send them together (``shared.engine.redis.pipeline``). A router relies on it to
write a batch's history before its publish and its done marks after, in one round trip.

Where :attr:`Store.ordered_across_keys` is False (Redis Cluster), that order holds only among
writes on one room (its history, and ``Fanout.publish_rooms`` to it); a write that must follow
writes elsewhere (a router's done marks) is started after they are awaited.
"""

from __future__ import annotations

from shared.engine.counters import Counters
from shared.engine.done_marks import DoneMarks
from shared.engine.history import History
from shared.engine.marks import Marks
from shared.engine.members import Members
from shared.engine.presence import Presence
from shared.engine.records import Record, RecordKind, Records


class Store:
    # Whether the ordered writes also keep their order across rooms and concerns (see above).
    ordered_across_keys: bool = True

    def __init__(
        self,
        *,
        records: Records,
        marks: Marks,
        done_marks: DoneMarks,
        history: History,
        presence: Presence,
        members: Members,
        counters: Counters,
    ) -> None:
        self.records = records
        self.marks = marks
        # Redelivery de-duplication marks, beside the other state and sharing its connection
        # and ordered pipeline.
        self.done_marks = done_marks
        self.history = history
        self.presence = presence
        self.members = members
        self.counters = counters

    async def start(self) -> None:
        """Connect. Idempotent."""

    async def close(self) -> None:
        """Release connections."""

    async def get_with_claimed(self, kind: RecordKind, rid: str, keys: list[str]) -> tuple[Record | None, list[bool]]:
        """``records.get`` and ``marks.claimed`` together (one round trip where the store can):
        every connect reads its room and its user's ban."""
        return await self.records.get(kind, rid), await self.marks.claimed(keys)
