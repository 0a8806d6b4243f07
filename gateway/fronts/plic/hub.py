"""This front's connections and the room channels they need (one plic connection, many rooms).

A connection receives every room its user participates in: at connect it is added to each of
its rooms, and a ``members_changed`` control notice for a plic room re-checks the room's members
among the users connected here (one ``Members.check`` per notice), adding or dropping the room for
their connections. The front listens on a room's channel while any local connection is in it.

Each delivered MESSAGE is re-encoded ONCE per room delivery as ``MessageReceived`` and the same
bytes written to every local connection of the room, except the sending connection, which gets
its ``MessageSentConfirmation`` instead. Router refusals (ConnectionNotice ERROR frames) become a
``confirmed: false`` confirmation, and for 403/406 the seed's close (``codec.error_close``).
Must not decide room rules (the router does) or keep what another replica needs.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Collection
from typing import Protocol

import structlog

from gateway.fronts.aiohttp_wire import send, write
from gateway.fronts.room_hub import RoomHub
from gateway.wire import text_frame
from shared import metrics
from shared.engine.marks import Marks
from shared.engine.records import RecordKind
from shared.features import bans
from shared.protocol.envelope import ClientProtocol, ConnectionNotice, ControlNotice, ControlTopic, Kind, RoomDelivery
from shared.protocol.frames import read_error_frame

from . import codec
from .connection import PlicConnection
from .rooms import ROOM_TAG, Alias, PlicStore

log = structlog.get_logger("gateway.plic")

PENDING_SECONDS = 30.0  # a confirmation the routers never answered is forgotten after this
MAX_PENDING = 100_000


class HubStore(PlicStore, Protocol):
    @property
    def marks(self) -> Marks: ...


class Hub(RoomHub[PlicConnection]):
    def __init__(self, store: HubStore, max_buffer: int) -> None:
        super().__init__(ClientProtocol.PLIC)
        self.store = store
        self.max_buffer = max_buffer
        self._plic_ids: dict[str, int] = {}  # parley room id → plic int id, for the rooms held here
        # request id → (connection, message_temp_id, when), oldest first
        self._pending: OrderedDict[str, tuple[PlicConnection, str, float]] = OrderedDict()

    def room_of(self, conn: PlicConnection, room_id: int) -> str | None:
        """The parley room behind plic room ``room_id`` if ``conn`` receives it."""
        for parley_id in conn.rooms:
            if self._plic_ids.get(parley_id) == room_id:
                return parley_id
        return None

    # --- connections --------------------------------------------------------------------------
    async def join(self, conn: PlicConnection, aliases: list[Alias]) -> None:
        for alias in aliases:
            await self.receive(conn, alias.parley_id, alias.room_id)

    async def receive(self, conn: PlicConnection, parley_id: str, room_id: int) -> None:
        """``conn`` receives plic room ``room_id`` (parley room ``parley_id``) from now on."""
        self._plic_ids[parley_id] = room_id  # before subscribing: its first delivery may come at once
        if not await self.add_room(conn, parley_id) and parley_id not in self._rooms:
            self._plic_ids.pop(parley_id, None)  # nobody here receives it after all

    def room_dropped(self, room_id: str) -> None:
        self._plic_ids.pop(room_id, None)

    def expect(self, request_id: str, conn: PlicConnection, temp_id: str) -> None:
        now = time.monotonic()
        pending = self._pending
        while pending:
            oldest = next(iter(pending.values()))
            if now - oldest[2] < PENDING_SECONDS and len(pending) < MAX_PENDING:
                break
            pending.popitem(last=False)
        pending[request_id] = (conn, temp_id, now)

    def forget(self, request_id: str) -> None:
        self._pending.pop(request_id, None)

    # --- bus listeners (plain callables on the event loop) ------------------------------------
    def on_room(self, room_id: str, data: bytes) -> None:
        delivery = RoomDelivery.decode(data)
        for item in delivery.items:
            room = self._rooms.get(room_id)
            if not room:
                return
            if item.kind == Kind.SEND_MESSAGE:
                self._deliver(room_id, room, item.frame, item.only_users)
            if item.close_user_id:
                for conn in [c for c in self._users.get(item.close_user_id, ()) if room_id in c.rooms]:
                    self.spawn(self._disconnected(conn, room_id))

    def _deliver(self, room_id: str, room: set[PlicConnection], frame: bytes, only: list[str] | None) -> None:
        message = codec.ivs_message(frame)
        if message is None:
            return
        sender: PlicConnection | None = None
        if message.request_id is not None and message.request_id in self._pending:
            sender, temp_id, _ = self._pending.pop(message.request_id)
            reply = codec.confirmation(temp_id, confirmed=True, message_id=message.message_id)
            send(sender, reply, self.max_buffer)
        audience: Collection[PlicConnection] = room
        if only is not None:  # an IVS direct message in a plic room: its two parties only
            audience = [c for c in room if c.user_id in only]
        if sender is not None:
            audience = [c for c in audience if c is not sender]
        raw = text_frame(codec.message_received(self._plic_ids[room_id], message.sender_id, message.content))
        sent = write(audience, raw, self.max_buffer) + (sender is not None)
        metrics.count_deliveries(ClientProtocol.PLIC, Kind.SEND_MESSAGE, sent)

    def on_gateway(self, data: bytes) -> None:
        notice = ConnectionNotice.decode(data)
        conn = self._by_id.get(notice.connection_id)
        error = read_error_frame(notice.frame)
        if conn is None or error is None:
            return
        entry = self._pending.pop(error.request_id, None) if error.request_id else None
        if entry is not None:
            send(conn, codec.confirmation(entry[1], confirmed=False, reason=error.message), self.max_buffer)
        close = codec.error_close(error.code)
        if close is not None:
            self.close_soon(conn, close, error.message)

    def on_control(self, data: bytes) -> None:
        notice = ControlNotice.decode(data)
        if notice.topic == ControlTopic.MEMBERS_CHANGED and self._users:
            self.spawn(self._refresh(notice.subject))

    # --- async follow-ups ---------------------------------------------------------------------
    async def _refresh(self, parley_id: str) -> None:
        users = list(self._users)
        present = await self.store.members.check(parley_id, users)
        room_id = self._plic_ids.get(parley_id)
        if room_id is None and any(present):
            record = await self.store.records.get(RecordKind.ROOM, parley_id)
            tag = (record or {}).get("tags", {}).get(ROOM_TAG)
            if tag is None:
                return  # not a plic room
            room_id = int(tag)
        for user, is_member in zip(users, present, strict=True):
            for conn in list(self._users.get(user, ())):
                if is_member and room_id is not None:
                    await self.receive(conn, parley_id, room_id)
                elif not is_member:
                    await self.drop_room(conn, parley_id)

    async def _disconnected(self, conn: PlicConnection, parley_id: str) -> None:
        """DisconnectUser / BanUser in one of the user's rooms: the seed's 4005 or 4004."""
        banned = await bans.is_banned(self.store.marks, parley_id, conn.user_id)
        if banned:
            self.close_soon(conn, codec.Close.BANNED, "User is Banned")
        else:
            self.close_soon(conn, codec.Close.ADMIN_ACTION, "Disconnected by a moderator")

    def close_soon(self, conn: PlicConnection, code: int, reason: str) -> asyncio.Task[object]:
        """Tell the client in the seed's Disconnection frame, then close with the seed's code."""
        if conn.closing is not None:  # the first close decides the code
            return conn.closing
        send(conn, codec.disconnection(code, reason), self.max_buffer)
        conn.closing = self.spawn(conn.ws.close(code=code, message=codec.close_reason(reason).encode()))
        return conn.closing
