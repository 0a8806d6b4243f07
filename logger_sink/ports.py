"""What the logger sink needs of the engines, as Protocols: any engine's ``Bus`` satisfies them."""

from __future__ import annotations

from typing import Protocol

from shared.engine.fanout import Fanout
from shared.engine.logstream import LogStream


class LoggerSinkBus(Protocol):
    """The log stream to drain, and control notices (configuration changes)."""

    @property
    def fanout(self) -> Fanout: ...

    @property
    def logs(self) -> LogStream: ...
