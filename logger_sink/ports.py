"""What the logger sink needs of the engines, as Protocols: any engine's ``Store`` and ``Bus``
satisfy them.

``LoggerSinkStore``: it only reads room and logging-configuration records.
"""

from __future__ import annotations

from typing import Protocol

from shared.engine.fanout import Fanout
from shared.engine.logstream import LogStream
from shared.engine.records import RecordReader


class LoggerSinkStore(Protocol):
    @property
    def records(self) -> RecordReader: ...


class LoggerSinkBus(Protocol):
    """The log stream to drain, and control notices (configuration changes)."""

    @property
    def fanout(self) -> Fanout: ...

    @property
    def logs(self) -> LogStream: ...
