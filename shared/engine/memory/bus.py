"""``MemoryBus``: the in-process :class:`~shared.engine.bus.Bus` for embedded mode (``parley dev``) and tests.

Same contracts as ``AmqpRedisBus``, minus durability: nothing survives the process, which is the
point of embedded mode. Holds nothing itself; each path is its own engine module.
"""

from __future__ import annotations

from shared.engine.bus import Bus
from shared.engine.memory.actions import MemoryActions
from shared.engine.memory.fanout import MemoryFanout
from shared.engine.memory.logstream import MemoryLogStream
from shared.engine.memory.review_rpc import MemoryReviewRpc


class MemoryBus(Bus):
    actions: MemoryActions
    fanout: MemoryFanout
    reviews: MemoryReviewRpc
    logs: MemoryLogStream

    def __init__(self, shards: int = 16) -> None:
        super().__init__(MemoryActions(shards), MemoryFanout(), MemoryReviewRpc(), MemoryLogStream())
