"""What the router needs of the engines, as Protocols: any engine's ``Store`` and ``Bus``
satisfy them.

``RouterStore``: it reads rooms and members (never writes either), writes history and inboxes,
marks what it published (done marks), sweeps dead gateways' presence (its turn is a mark) and
reports itself alive (counters). Its done marks follow its publishes in order
(``ordered_across_keys`` says whether the store keeps that order by itself).
"""

from __future__ import annotations

from typing import Protocol

from shared.engine.actions import Actions
from shared.engine.counters import Counters
from shared.engine.done_marks import DoneMarks
from shared.engine.fanout import Fanout
from shared.engine.history import History
from shared.engine.logstream import LogStream
from shared.engine.marks import Marks
from shared.engine.members import MemberList
from shared.engine.presence import Presence
from shared.engine.records import RecordReader


class RouterStore(Protocol):
    @property
    def records(self) -> RecordReader: ...

    @property
    def marks(self) -> Marks: ...

    @property
    def done_marks(self) -> DoneMarks: ...

    @property
    def history(self) -> History: ...

    @property
    def presence(self) -> Presence: ...

    @property
    def members(self) -> MemberList: ...

    @property
    def counters(self) -> Counters: ...

    @property
    def ordered_across_keys(self) -> bool: ...


class RouterBus(Protocol):
    """Shards to consume (and presence actions to publish), frames and control notices,
    deliveries for the chat logs. Reviews go through the router's ``Reviewer``."""

    @property
    def actions(self) -> Actions: ...

    @property
    def fanout(self) -> Fanout: ...

    @property
    def logs(self) -> LogStream: ...
