"""What the gateway needs of the engines, as Protocols: any engine's ``Store`` and ``Bus``
satisfy them.

``GatewayStore``: it reads rooms (never writes them), asks who is a member (never sees member
lists), claims tokens, reads history, keeps its connections' presence and reserves connection
quota.
"""

from __future__ import annotations

from typing import Protocol

from shared.engine.actions import Actions
from shared.engine.counters import Counters
from shared.engine.fanout import Fanout
from shared.engine.history import History
from shared.engine.marks import Marks
from shared.engine.members import MemberCheck
from shared.engine.presence import Presence
from shared.engine.records import Record, RecordKind, RecordReader


class GatewayStore(Protocol):
    @property
    def records(self) -> RecordReader: ...

    @property
    def marks(self) -> Marks: ...

    @property
    def history(self) -> History: ...

    @property
    def presence(self) -> Presence: ...

    @property
    def members(self) -> MemberCheck: ...

    @property
    def counters(self) -> Counters: ...

    async def get_with_claimed(
        self, kind: RecordKind, rid: str, keys: list[str]
    ) -> tuple[Record | None, list[bool]]: ...


class GatewayBus(Protocol):
    """Client actions out to the routers; room and gateway frames in, lifecycle frames out."""

    @property
    def actions(self) -> Actions: ...

    @property
    def fanout(self) -> Fanout: ...
