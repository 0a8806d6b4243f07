"""In-process :class:`~shared.engine.records.Records`."""

from __future__ import annotations

from collections import defaultdict

from shared.engine.records import QuotaExceeded, Record, RecordKind, Records


class MemoryRecords(Records):
    def __init__(self) -> None:
        self._records: dict[RecordKind, dict[str, tuple[int, Record]]] = defaultdict(dict)

    async def create(self, kind: RecordKind, rid: str, record: Record, updated_ms: int, limit: int) -> None:
        table = self._records[kind]
        if len(table) >= limit:
            raise QuotaExceeded(kind, limit)
        table[rid] = (updated_ms, record)

    async def put(self, kind: RecordKind, rid: str, record: Record, updated_ms: int) -> bool:
        table = self._records[kind]
        if rid not in table:
            return False
        table[rid] = (updated_ms, record)
        return True

    async def get(self, kind: RecordKind, rid: str) -> Record | None:
        entry = self._records[kind].get(rid)
        return None if entry is None else entry[1]

    async def delete(self, kind: RecordKind, rid: str) -> bool:
        return self._records[kind].pop(rid, None) is not None

    async def count(self, kind: RecordKind) -> int:
        return len(self._records[kind])

    async def page(self, kind: RecordKind, after: tuple[int, str] | None, limit: int) -> list[tuple[int, str, Record]]:
        ordered = sorted(
            ((updated, rid, record) for rid, (updated, record) in self._records[kind].items()),
            key=lambda row: (row[0], row[1]),
            reverse=True,
        )
        if after is not None:
            ordered = [row for row in ordered if (row[0], row[1]) < after]
        return ordered[:limit]
