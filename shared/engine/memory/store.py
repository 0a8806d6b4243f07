"""``MemoryStore``: the in-process :class:`~shared.engine.store.Store` for embedded mode
(``parley dev``) and tests.

Same contracts as the Redis engine, minus durability: nothing survives the process, which is the
point of embedded mode. Each concern is its own object (``shared.engine.memory.<concern>``);
nothing is shared between them, so there is nothing to connect or release.
"""

from __future__ import annotations

from shared.engine.memory.counters import MemoryCounters
from shared.engine.memory.done_marks import MemoryDoneMarks
from shared.engine.memory.history import MemoryHistory
from shared.engine.memory.marks import MemoryMarks
from shared.engine.memory.members import MemoryMembers
from shared.engine.memory.presence import MemoryPresence
from shared.engine.memory.records import MemoryRecords
from shared.engine.store import Store


class MemoryStore(Store):
    def __init__(self) -> None:
        super().__init__(
            records=MemoryRecords(),
            marks=MemoryMarks(),
            done_marks=MemoryDoneMarks(),
            history=MemoryHistory(),
            presence=MemoryPresence(),
            members=MemoryMembers(),
            counters=MemoryCounters(),
        )
