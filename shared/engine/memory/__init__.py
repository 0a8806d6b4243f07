"""The in-process engines: every interface of ``shared.engine`` kept in this process's memory."""

from shared.engine.memory.bus import MemoryBus
from shared.engine.memory.store import MemoryStore

__all__ = ["MemoryBus", "MemoryStore"]
