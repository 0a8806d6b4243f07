"""What the control plane needs of the engines, as Protocols: any engine's ``Store`` and ``Bus``
satisfy them.

``ApiStore``: every Store concern but the routers' done marks. The control plane is the one
writer of records and member lists; it reads history and presence, sets bans (marks) and counts
its throttles (counters).
"""

from __future__ import annotations

from typing import Protocol

from shared.engine.actions import Actions
from shared.engine.counters import Counters
from shared.engine.fanout import Fanout
from shared.engine.history import History
from shared.engine.marks import Marks
from shared.engine.members import Members
from shared.engine.presence import Presence
from shared.engine.records import Records


class ApiStore(Protocol):
    @property
    def records(self) -> Records: ...

    @property
    def marks(self) -> Marks: ...

    @property
    def history(self) -> History: ...

    @property
    def presence(self) -> Presence: ...

    @property
    def members(self) -> Members: ...

    @property
    def counters(self) -> Counters: ...


class ApiBus(Protocol):
    """Actions for the routers (moderation, membership), control notices and approval frames."""

    @property
    def actions(self) -> Actions: ...

    @property
    def fanout(self) -> Fanout: ...
