"""What the control plane needs of the engines, as Protocols: any engine's ``Bus`` satisfies them."""

from __future__ import annotations

from typing import Protocol

from shared.engine.actions import Actions
from shared.engine.fanout import Fanout


class ApiBus(Protocol):
    """Actions for the routers (moderation, membership), control notices and approval frames."""

    @property
    def actions(self) -> Actions: ...

    @property
    def fanout(self) -> Fanout: ...
