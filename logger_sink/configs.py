"""Which logging configurations a room's records go to: the Store is the truth, this caches it.

A room entry is dropped on a ``room_changed`` control notice (UpdateRoom/DeleteRoom), and
everything after ``ttl_ms`` anyway, since control notices are at-most-once; a configuration
change (UpdateLoggingConfiguration) is picked up within ``ttl_ms``.
"""

from __future__ import annotations

import time

from logger_sink.ports import LoggerSinkStore
from shared.engine.records import RecordKind
from shared.protocol.models import LoggingConfiguration, Room

ACTIVE = "ACTIVE"


class ConfigResolver:
    def __init__(self, store: LoggerSinkStore, ttl_ms: int = 5000, max_entries: int = 100_000) -> None:
        self._store = store
        self._ttl_ns = ttl_ms * 1_000_000
        self._max_entries = max_entries
        self._rooms: dict[str, tuple[int, list[str]]] = {}
        self._configs: dict[str, tuple[int, LoggingConfiguration | None]] = {}

    async def for_room(self, room_id: str) -> list[LoggingConfiguration]:
        """The room's ACTIVE configurations (only those log anything), in the room's order."""
        found = []
        for arn in await self._room_arns(room_id):
            config = await self._config(arn)
            if config is not None and config.state == ACTIVE:
                found.append(config)
        return found

    async def _room_arns(self, room_id: str) -> list[str]:
        now = time.monotonic_ns()
        entry = self._rooms.get(room_id)
        if entry is not None and now - entry[0] < self._ttl_ns:
            return entry[1]
        record = await self._store.records.get(RecordKind.ROOM, room_id)
        arns = [] if record is None else list(Room.from_record(record).logging_configuration_identifiers)
        if len(self._rooms) >= self._max_entries:
            self._rooms.clear()
        self._rooms[room_id] = (now, arns)
        return arns

    async def _config(self, arn: str) -> LoggingConfiguration | None:
        now = time.monotonic_ns()
        entry = self._configs.get(arn)
        if entry is not None and now - entry[0] < self._ttl_ns:
            return entry[1]
        record = await self._store.records.get(RecordKind.LOGGING_CONFIGURATION, arn.rsplit("/", 1)[-1])
        config = None if record is None else LoggingConfiguration.from_record(record)
        if config is not None and config.arn != arn:  # an ARN of another account/region
            config = None
        if len(self._configs) >= self._max_entries:
            self._configs.clear()
        self._configs[arn] = (now, config)
        return config

    def invalidate_room(self, room_id: str) -> None:
        self._rooms.pop(room_id, None)

    def invalidate_configs(self) -> None:
        self._configs.clear()
