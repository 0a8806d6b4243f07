"""What the router needs of the engines, as Protocols: any engine's ``Bus`` satisfies them."""

from __future__ import annotations

from typing import Protocol

from shared.engine.actions import Actions
from shared.engine.fanout import Fanout
from shared.engine.logstream import LogStream


class RouterBus(Protocol):
    """Shards to consume (and presence actions to publish), frames and control notices,
    deliveries for the chat logs. Reviews go through the router's ``Reviewer``."""

    @property
    def actions(self) -> Actions: ...

    @property
    def fanout(self) -> Fanout: ...

    @property
    def logs(self) -> LogStream: ...
