"""What the gateway needs of the engines, as Protocols: any engine's ``Bus`` satisfies them."""

from __future__ import annotations

from typing import Protocol

from shared.engine.actions import Actions
from shared.engine.fanout import Fanout


class GatewayBus(Protocol):
    """Client actions out to the routers; room and gateway frames in, lifecycle frames out."""

    @property
    def actions(self) -> Actions: ...

    @property
    def fanout(self) -> Fanout: ...
