"""This front's connections and the room channels they need (one connection, every group of its user).

Each delivered item is re-encoded ONCE per room delivery (``codec.event_of``) and the same bytes
written to the local connections it is for: a MESSAGE (20) to the group's other members, a
receipt (22/23) to the message's sender, typing (40/41) to the others. The replica that holds the
acting connection (its request id is pending here) answers it (21 for a message) and, for a
receipt, appends it to the receiver's event log; messages, whoever sent them, are already in the
members' logs (the router keeps them, a group being a ``member_log`` room), so a user offline now
gets them on their next method 20.
Router refusals (ConnectionNotice ERROR frames) become ERROR events. A ``members_changed`` notice
for a group re-checks the members connected here, subscribes or drops the group for them, and
sends them their new log events (the group events 70/72/73); a ``session_replaced`` notice
closes the user's connections made with an older session (one device session per user). Each
connection remembers the ids it was sent (bounded) so the live path and a log replay never send
one event twice, and saves its user's cursor as it delivers log events (``cursor.SaveSchedule``:
every N events or T ms, one save in flight per connection).
Must not decide room rules (the router does) or keep what another replica needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from gateway.fronts.aiohttp_wire import write
from gateway.fronts.room_hub import RoomHub
from gateway.wire import text_frame
from shared import metrics
from shared.clock import now_ms
from shared.features.ratelimit import SlidingWindow
from shared.protocol.envelope import ClientProtocol, ConnectionNotice, ControlNotice, ControlTopic, Kind, RoomDelivery
from shared.protocol.frames import read_error_frame

from . import codec
from .cursor import Cursor, SaveSchedule, cursor_of
from .groups import Groups

log = structlog.get_logger("gateway.groupschat")

PENDING_SECONDS = 30.0
MAX_PENDING = 100_000
REMEMBERED = 2048  # event ids (and message senders) one connection remembers
LOGGED = (codec.Event.MESSAGE, codec.Event.MESSAGE_DELIVERED, codec.Event.MESSAGE_READ)  # kept for offline users


@dataclass(eq=False, slots=True)
class Connection:
    connection_id: str
    user_id: str
    ws: web.WebSocketResponse
    transport: Any  # asyncio.Transport (aiohttp's request.transport)
    rate: SlidingWindow
    floor: int  # log events at or before this were delivered before (cursor) or predate the connection
    saves: SaveSchedule = field(default_factory=lambda: SaveSchedule(1, 0))
    rooms: set[str] = field(default_factory=set)
    sent: OrderedDict[str, int] = field(default_factory=OrderedDict)  # event id → stamp, sent here
    senders: OrderedDict[str, tuple[str, str]] = field(default_factory=OrderedDict)  # message id → (group, sender)
    high: int = 0  # newest event timestamp sent here
    pulling: asyncio.Lock = field(default_factory=asyncio.Lock)
    session_key: str = ""  # the messaging-url key it connected with
    saver: asyncio.Task[object] | None = None  # the cursor save loop, while events are unsaved
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # a save is due now

    def mark(self, event_id: str, timestamp: int) -> bool:
        """Remember an event about to be sent; False if it already was."""
        if event_id in self.sent:
            return False
        self.sent[event_id] = timestamp
        if len(self.sent) > REMEMBERED:
            self.sent.popitem(last=False)
        self.high = max(self.high, timestamp)
        return True

    def resume(self, cursor: Cursor) -> None:
        """Take up from the user's saved cursor (method 20): what it covers is not sent again."""
        self.floor = min(self.floor, cursor.floor)
        for event_id, stamp in cursor.ids.items():
            self.mark(event_id, stamp)
        self.high = max(self.high, cursor.ms)

    def cursor(self) -> Cursor:
        return cursor_of(self.sent, self.high)

    def remember(self, message_id: str, group_id: str, sender: str) -> None:
        self.senders[message_id] = (group_id, sender)
        if len(self.senders) > REMEMBERED:
            self.senders.popitem(last=False)


@dataclass(slots=True, frozen=True)
class Pending:
    conn: Connection
    method: int
    context: dict[str, str]
    when: float


class Hub(RoomHub[Connection]):
    def __init__(self, groups: Groups, max_buffer: int) -> None:
        super().__init__(ClientProtocol.GROUPSCHAT)
        self.groups = groups
        self.max_buffer = max_buffer
        self._pending: OrderedDict[str, Pending] = OrderedDict()

    def send(self, conn: Connection, payload: bytes) -> bool:
        return write([conn], text_frame(payload), self.max_buffer) == 1

    def expect(self, request_id: str, conn: Connection, method: int, context: dict[str, str]) -> None:
        now = time.monotonic()
        pending = self._pending
        while pending:
            oldest = next(iter(pending.values()))
            if now - oldest.when < PENDING_SECONDS and len(pending) < MAX_PENDING:
                break
            pending.popitem(last=False)
        pending[request_id] = Pending(conn, method, context, now)

    def forget(self, request_id: str) -> None:
        self._pending.pop(request_id, None)

    # --- replay -------------------------------------------------------------------------------
    async def pull(self, conn: Connection) -> None:
        """Send the connection's user the log events not yet sent, oldest first."""
        async with conn.pulling:
            count = 0
            for event_id, group_id, payload in await self.groups.log.read(conn.user_id):
                event = codec.logged(group_id, payload)
                if event is None or event.timestamp <= conn.floor or event_id in conn.sent:
                    continue
                if event.kind == codec.Event.MESSAGE:
                    body = event.body
                    conn.remember(str(body.get("message_id")), str(body.get("group_id")), str(body.get("user_id")))
                conn.mark(event_id, event.timestamp)
                self.send(conn, event.raw)
                count += 1
            self._delivered(conn, count)

    # --- the delivered cursor ------------------------------------------------------------------
    def _delivered(self, conn: Connection, count: int) -> None:
        """``count`` log events were just sent to ``conn``: save its cursor when due."""
        if count <= 0 or conn.connection_id not in self._by_id:
            return
        conn.saves.delivered(count, now_ms())
        if conn.saves.due(now_ms()):
            conn.wake.set()
        if conn.saver is None:
            conn.saver = self.spawn(self._save_loop(conn))

    async def _save_loop(self, conn: Connection) -> None:
        try:
            while conn.saves.unsaved:
                wait_ms = conn.saves.wait_ms(now_ms())
                if wait_ms:
                    conn.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(conn.wake.wait(), wait_ms / 1000)
                    continue
                if not await self.save(conn):  # the Store is unreachable: try again later
                    await asyncio.sleep(max(conn.saves.every_ms, 100) / 1000)
        finally:
            conn.saver = None

    async def save(self, conn: Connection) -> bool:
        """Save the connection's cursor now; False if the Store refused (kept unsaved)."""
        unsaved, cursor = conn.saves.unsaved, conn.cursor()
        conn.saves.saved()
        try:
            await self.groups.log.advance(conn.user_id, cursor)
        except Exception:
            log.warning("groupschat cursor save failed", exc_info=True)
            conn.saves.delivered(unsaved, now_ms())
            return False
        return True

    async def finish(self, conn: Connection) -> None:
        """The connection ended: stop its save loop, then save what it delivered."""
        await self.leave(conn)
        if conn.saver is not None:
            conn.saver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await conn.saver
        await self.save(conn)

    # --- bus listeners (plain callables on the event loop) ------------------------------------
    def on_room(self, room_id: str, data: bytes) -> None:
        delivery = RoomDelivery.decode(data)
        for item in delivery.items:
            room = self._rooms.get(room_id)
            if not room:
                return
            if item.kind in (Kind.SEND_MESSAGE, Kind.SEND_EVENT):
                self._deliver(room_id, room, item.frame, item.only_users)

    def _deliver(self, room_id: str, room: set[Connection], frame: bytes, only: list[str] | None) -> None:
        item = codec.delivered(frame)
        if item is None:
            return
        encoded = codec.event_of(item, room_id)
        pending = self._pending.pop(item.request_id, None) if item.request_id else None
        if encoded is None:
            return
        kind, payload = encoded
        if kind == codec.Event.MESSAGE:
            audience = [c for c in room if c.user_id != item.sender_id]
            receivers: list[str] = []
            if pending is not None:
                sent = codec.encode(codec.Event.MESSAGE_SENT, item.send_ms, {"message_id": item.frame_id})
                self.send(pending.conn, sent)
        elif kind in (codec.Event.MESSAGE_DELIVERED, codec.Event.MESSAGE_READ):
            audience = [c for c in room if c.user_id == item.recipient]
            receivers = [item.recipient]
        else:  # typing: ephemeral, never logged
            audience = [c for c in room if c.user_id != item.sender_id]
            receivers = []
        if only is not None:
            audience = [c for c in audience if c.user_id in only]
        audience = [c for c in audience if c.mark(item.frame_id, item.send_ms)]
        if kind == codec.Event.MESSAGE:
            for conn in audience:
                conn.remember(item.frame_id, room_id, item.sender_id)
        sent_count = write(audience, text_frame(payload), self.max_buffer)
        action = Kind.SEND_MESSAGE if kind == codec.Event.MESSAGE else Kind.SEND_EVENT
        metrics.count_deliveries(ClientProtocol.GROUPSCHAT, action, sent_count + (pending is not None))
        if kind in LOGGED:
            for conn in audience:
                self._delivered(conn, 1)
        if pending is not None and receivers:
            self.spawn(self.groups.log.append(receivers, item.frame_id, payload, room_id))

    def on_gateway(self, data: bytes) -> None:
        notice = ConnectionNotice.decode(data)
        conn = self._by_id.get(notice.connection_id)
        error = read_error_frame(notice.frame)
        if conn is None or error is None:
            return
        entry = self._pending.pop(error.request_id, None) if error.request_id else None
        method = entry.method if entry is not None else None
        context = entry.context if entry is not None else {}
        self.send(conn, codec.error(now_ms(), error.code, error.message, method, **context))

    def on_control(self, data: bytes) -> None:
        notice = ControlNotice.decode(data)
        if notice.topic == ControlTopic.MEMBERS_CHANGED and self._users:
            self.spawn(self._refresh(notice.subject))
        elif notice.topic == ControlTopic.SESSION_REPLACED and notice.subject in self._users:
            self.spawn(self._replaced(notice.subject))

    # --- async follow-ups ---------------------------------------------------------------------
    async def _refresh(self, room_id: str) -> None:
        users = list(self._users)
        present = await self.groups.store.members.check(room_id, users)
        touched: list[Connection] = []
        for user, is_member in zip(users, present, strict=True):
            for conn in list(self._users.get(user, ())):
                if is_member:
                    if room_id not in conn.rooms and not await self.groups.is_group(room_id):
                        return  # not a group
                    await self.add_room(conn, room_id)
                    touched.append(conn)
                elif room_id in conn.rooms:
                    await self.drop_room(conn, room_id)
                    touched.append(conn)
        for conn in touched:
            await self.pull(conn)

    async def _replaced(self, user_id: str) -> None:
        """A new session for the user: connections of any older one get an ERROR event and a close."""
        current = await self.groups.current_key(user_id)
        for conn in list(self._users.get(user_id, ())):
            if conn.session_key != current and not conn.ws.closed:
                self.send(conn, codec.error(now_ms(), 409, "Session replaced by a new device"))
                self.spawn(conn.ws.close(code=1000, message=b"Session replaced by a new device"))
