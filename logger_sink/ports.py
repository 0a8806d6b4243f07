"""What the logger sink needs of the engines.

``LoggerSinkStore``: it only reads room and logging-configuration records.
"""

from __future__ import annotations

from typing import Protocol

from shared.engine.records import RecordReader


class LoggerSinkStore(Protocol):
    @property
    def records(self) -> RecordReader: ...
