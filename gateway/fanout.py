"""Rooms on one gateway: which local connections are in which room, and delivering to them.

The gateway subscribes to a room's channel when its first local connection joins and
unsubscribes when the last one leaves. A :class:`~shared.protocol.envelope.RoomDelivery` carries frames
already encoded by the router; each becomes one serialized WebSocket frame written to every
local connection of the room (``gateway.wire``) — one encoding, no task or await per socket,
and ``gateway.wire``'s one policy for a socket that stopped reading.

A seed protocol front (``gateway.fronts``) passes a :class:`Translator`: each item is re-encoded
in the front's protocol once per room delivery (not per connection), and may leave out its
sender's own connections; a router's notice to one connection is translated the same way.

Per room it keeps a :class:`~gateway.gaptrail.RoomTrail` (the last history message delivered);
after a lost subscription ``gateway.gapfill`` pauses the rooms (live deliveries wait), fills the
gap from history and resumes them: in order, each message once.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from gateway.gaptrail import RoomTrail, kept_in_history
from gateway.wire import abort_slow, send_frame, text_frame, write_frame
from shared import metrics
from shared.clock import now_ms
from shared.engine.fanout import Subscription
from shared.protocol.closecodes import CloseCode
from shared.protocol.envelope import ClientProtocol, ConnectionNotice, DeliveryItem, Kind, RoomDelivery

MAX_HELD_FRAMES = 10_000
# How long live frames are checked against the ids a catch-up already sent: far more than a
# publish can trail its history write (one Redis round trip), little enough to hold no memory.
CAUGHT_UP_SECONDS = 5.0


# Frames of one batch written to a socket together, at most: the slow-consumer check runs before
# each write, so a socket's buffer stays within max_send_buffer plus this (plus one frame).
COALESCE_MAX_BYTES = 64 * 1024


class Member(Protocol):
    connection_id: str
    room_id: str
    user_id: str
    websocket: ServerConnection


@dataclass(slots=True, frozen=True)
class Translated:
    """A delivery item in a front's protocol: the payload once, and whose connections skip it."""

    payload: bytes
    except_user: str = ""  # e.g. the sender, in a protocol where senders do not get their own message


class Translator(Protocol):
    """A front's encoder: called once per item per room delivery; None: nobody gets the item."""

    def item(self, room_id: str, item: DeliveryItem) -> Translated | None: ...

    def notice(self, notice: ConnectionNotice) -> bytes | None: ...


class RoomFanout:
    def __init__(
        self,
        max_send_buffer: int = 1 << 20,
        translator: Translator | None = None,
        protocol: ClientProtocol = ClientProtocol.IVS,
    ) -> None:
        self.max_send_buffer = max_send_buffer  # bytes queued for one socket before it is dropped
        self.translator = translator  # None: the IVS frames as the router encoded them
        self.protocol = protocol  # what the connections speak: the deliveries' Protocol label
        self.subscription: Subscription | None = None
        self._rooms: dict[str, set[ServerConnection]] = {}
        self._trails: dict[str, RoomTrail] = {}
        # Rooms filling a gap: live deliveries wait here, behind the pause that holds them.
        self._filling: dict[str, tuple[int, list[bytes]]] = {}
        self._pauses = 0
        self._users: dict[tuple[str, str], set[ServerConnection]] = defaultdict(set)
        self._by_id: dict[str, ServerConnection] = {}
        self._closing: set[asyncio.Task[None]] = set()
        # Connections catching up on history: live frames wait here, (frame id, wire bytes).
        self._holding: dict[ServerConnection, list[tuple[str, bytes]]] = {}
        # After a catch-up: the ids its HISTORY frame carried. A message's history entry is
        # written before it is published, so its live frame can still be on the way when the
        # read is done and released; for a short while such frames are skipped, not repeated.
        self._caught_up: dict[ServerConnection, set[str]] = {}
        # parley extensions: moderators per room (targets of only_moderators items), and
        # connections awaiting approval (they get nothing until approved) → their room.
        self._moderators: dict[str, set[ServerConnection]] = {}
        self._pending: dict[ServerConnection, str] = {}
        # pending connections that receive meanwhile (a front whose seed only times them out)
        self._awaiting: dict[ServerConnection, str] = {}
        self.on_approved: Callable[[ServerConnection], None] | None = None

    def __len__(self) -> int:
        return len(self._by_id)

    def connections(self) -> list[ServerConnection]:
        return list(self._by_id.values())

    async def join(self, member: Member) -> None:
        ws = member.websocket
        self._by_id[member.connection_id] = ws
        self._users[(member.room_id, member.user_id)].add(ws)
        room = self._rooms.get(member.room_id)
        if room is None:
            room = self._rooms[member.room_id] = set()
            room.add(ws)
            self._trails[member.room_id] = RoomTrail(since_ms=now_ms())
            assert self.subscription is not None
            await self.subscription.add_room(member.room_id)
        else:
            room.add(ws)

    def add_moderator(self, room_id: str, ws: ServerConnection) -> None:
        self._moderators.setdefault(room_id, set()).add(ws)

    def set_pending(self, room_id: str, ws: ServerConnection, *, receives: bool = False) -> None:
        """Deliver nothing to ``ws`` until an item approves it (call before :meth:`join`);
        ``receives``: deliver as usual meanwhile, the approval only calls ``on_approved``."""
        (self._awaiting if receives else self._pending)[ws] = room_id

    def is_pending(self, ws: ServerConnection) -> bool:
        return ws in self._pending

    async def leave(self, member: Member) -> None:
        ws = member.websocket
        self._holding.pop(ws, None)
        self._caught_up.pop(ws, None)
        self._pending.pop(ws, None)
        self._awaiting.pop(ws, None)
        moderators = self._moderators.get(member.room_id)
        if moderators is not None:
            moderators.discard(ws)
            if not moderators:
                del self._moderators[member.room_id]
        self._by_id.pop(member.connection_id, None)
        key = (member.room_id, member.user_id)
        users = self._users.get(key)
        if users is not None:
            users.discard(ws)
            if not users:
                del self._users[key]
        room = self._rooms.get(member.room_id)
        if room is not None:
            room.discard(ws)
            if not room:
                del self._rooms[member.room_id]
                self._trails.pop(member.room_id, None)
                self._filling.pop(member.room_id, None)
                if self.subscription is not None:
                    await self.subscription.remove_room(member.room_id)

    # --- bus listeners (plain callables on the event loop) ---------------------------------
    def on_room(self, room_id: str, data: bytes) -> None:
        filling = self._filling.get(room_id)
        if filling is not None:
            filling[1].append(data)  # after the gap's messages
            return
        delivery = RoomDelivery.decode(data)
        if self.translator is None and len(delivery.items) > 1 and self._all_plain(room_id, delivery.items):
            raw = b"".join([text_frame(item.frame) for item in delivery.items])
            if len(raw) <= COALESCE_MAX_BYTES:
                self._deliver_together(room_id, delivery.items, raw)
                return
        for item in delivery.items:
            if not self._deliver_item(room_id, item):
                return

    def _deliver_item(self, room_id: str, item: DeliveryItem) -> bool:
        """Deliver one item to the room's connections; False: the room has none left."""
        room = self._rooms.get(room_id)
        if not room:
            return False
        if kept_in_history(item):
            trail = self._trails[room_id]
            if trail.seen(item.frame_id):
                return True  # filled from history already
            trail.delivered(item.frame_id, now_ms())
        translator = self.translator
        payload: bytes | None = item.frame
        skipped: Collection[ServerConnection] = ()
        if translator is not None:
            translated = translator.item(room_id, item)
            payload = None if translated is None else translated.payload
            if translated is not None and translated.except_user:
                skipped = self._users.get((room_id, translated.except_user), ())
        targeted = item.only_users or item.only_moderators or item.approve_connection
        audience = self._audience(room_id, room, item) if targeted else room  # also admits approved ones
        if payload is not None:
            self._deliver(audience, skipped, item, text_frame(payload))
        if item.close_user_id:
            for ws in list(self._users.get((room_id, item.close_user_id), ())):
                self.close_soon(ws, CloseCode.DISCONNECTED_BY_MODERATOR, item.close_reason)
        return True

    # --- gap fill after a lost subscription (gateway.gapfill) ----------------------------------
    def pause_rooms(self) -> tuple[int, dict[str, RoomTrail]]:
        """Hold every room's live deliveries until :meth:`resume`; the pause's number, and the
        rooms with their trails. A later pause takes over rooms still paused."""
        self._pauses += 1
        for room_id in self._rooms:
            kept = self._filling.get(room_id)
            self._filling[room_id] = (self._pauses, kept[1] if kept else [])
        return self._pauses, dict(self._trails)

    def resume(self, room_id: str, pause: int, trail: RoomTrail, missed: list[tuple[str, bytes]]) -> int:
        """Deliver a gap's ``missed`` history entries (oldest first, the delivered skipped) if the
        room still has ``trail`` (it was not left and joined anew meanwhile), then, unless a later
        pause holds the room, what arrived meanwhile; how many entries were delivered."""
        filled = 0
        for message_id, frame in missed:
            if self._trails.get(room_id) is not trail or trail.seen(message_id):
                continue
            if not self._deliver_item(room_id, DeliveryItem(Kind.SEND_MESSAGE, frame, frame_id=message_id)):
                break
            filled += 1
        filling = self._filling.get(room_id)
        if filling is not None and filling[0] == pause:
            del self._filling[room_id]
            for data in filling[1]:
                self.on_room(room_id, data)
        return filled

    def _all_plain(self, room_id: str, items: list[DeliveryItem]) -> bool:
        """Every item goes to the whole room as encoded, and no connection needs a per-frame
        decision (holding for catch-up, pending approval, de-duplicating against history), nor
        the room (a message a gap fill delivered already)."""
        if self._holding or self._pending or self._caught_up:
            return False
        trail = self._trails.get(room_id)
        if trail is not None and any(trail.seen(item.frame_id) for item in items if kept_in_history(item)):
            return False
        return not any(
            item.only_users or item.only_moderators or item.approve_connection or item.close_user_id for item in items
        )

    def _deliver_together(self, room_id: str, items: list[DeliveryItem], raw: bytes) -> None:
        """A router batch of several frames for the whole room: one write per socket, not one per
        frame (the same bytes a frame at a time would give; a syscall per delivery is most of the
        gateway's CPU)."""
        room = self._rooms.get(room_id)
        if not room:
            return
        sent = write_frame(room, raw, self.max_send_buffer)
        now = now_ms()
        trail = self._trails[room_id]
        for item in items:
            if kept_in_history(item):
                trail.delivered(item.frame_id, now)
            self._count(item, sent, now)

    def _deliver(
        self,
        audience: set[ServerConnection],
        skipped: Collection[ServerConnection],
        item: DeliveryItem,
        raw: bytes,
    ) -> None:
        holding, pending, caught_up = self._holding, self._pending, self._caught_up
        if holding or pending or caught_up or skipped:
            targets: Collection[ServerConnection] = [
                ws
                for ws in audience
                if ws not in holding
                and ws not in pending
                and ws not in skipped
                and not (ws in caught_up and item.frame_id in caught_up[ws])
            ]
        else:
            targets = audience
        sent = write_frame(targets, raw, self.max_send_buffer)
        if holding:
            self._keep_for_catch_up(audience, item.frame_id, raw)
        self._count(item, sent, now_ms())

    def _count(self, item: DeliveryItem, sent: int, now: int) -> None:
        """One item written to ``sent`` connections: Deliveries and its send-to-deliver latency."""
        metrics.count_deliveries(self.protocol, item.kind, sent)
        if item.received_ms:
            metrics.SEND_TO_DELIVER_SECONDS.observe(max(now - item.received_ms, 0) / 1000)

    def _audience(self, room_id: str, room: set[ServerConnection], item: DeliveryItem) -> set[ServerConnection]:
        """The connections a targeted item goes to: the named users' (direct messages and
        events), and/or the room's moderators plus the connection it approves."""
        targets: set[ServerConnection] = set()
        for user_id in item.only_users or ():
            targets.update(self._users.get((room_id, user_id), ()))
        if item.only_moderators:
            targets.update(self._moderators.get(room_id, ()))
        if item.approve_connection:
            ws = self._by_id.get(item.approve_connection)
            if ws is not None and self._pending.get(ws) == room_id:
                del self._pending[ws]  # approved: from now on it receives like everyone else
                targets.add(ws)
                if self.on_approved is not None:
                    self.on_approved(ws)
            elif ws is not None and self._awaiting.get(ws) == room_id:
                del self._awaiting[ws]  # it received all along; only its wait is over
                if self.on_approved is not None:
                    self.on_approved(ws)
        return targets

    # --- catch-up: history first, then the live frames that arrived meanwhile, without repeats --
    def hold(self, ws: ServerConnection) -> None:
        """Stop writing live room frames to ``ws``; keep them until :meth:`release`."""
        self._holding.setdefault(ws, [])

    def release(self, ws: ServerConnection, already_sent: set[str]) -> None:
        """Write the frames kept since :meth:`hold`, except those the history already carried."""
        kept = self._holding.pop(ws, None)
        if already_sent and ws.protocol.state is State.OPEN:
            self._caught_up[ws] = already_sent
            asyncio.get_running_loop().call_later(CAUGHT_UP_SECONDS, self._forget_caught_up, ws, already_sent)
        if not kept:
            return
        for frame_id, raw in kept:
            if frame_id not in already_sent:
                if not write_frame((ws,), raw, self.max_send_buffer):
                    return  # aborted as too slow, or closed: the rest would not arrive either

    def _forget_caught_up(self, ws: ServerConnection, ids: set[str]) -> None:
        if self._caught_up.get(ws) is ids:  # not replaced by a later catch-up meanwhile
            del self._caught_up[ws]

    def _keep_for_catch_up(self, room: set[ServerConnection], frame_id: str, raw: bytes) -> None:
        for ws in room:
            kept = self._holding.get(ws)
            if kept is None:
                continue
            if len(kept) >= MAX_HELD_FRAMES:  # a catch-up that never finishes must not grow forever
                self._holding.pop(ws)
                abort_slow(ws)
            else:
                kept.append((frame_id, raw))

    def on_gateway(self, data: bytes) -> None:
        notice = ConnectionNotice.decode(data)
        ws = self._by_id.get(notice.connection_id)
        if ws is None:
            return  # the connection ended meanwhile
        frame = notice.frame if self.translator is None else self.translator.notice(notice)
        if frame is not None:
            send_frame(ws, frame, self.max_send_buffer)
        if notice.close_code:
            self.close_soon(ws, notice.close_code, "")

    def close_soon(self, ws: ServerConnection, code: int, reason: str) -> None:
        task = asyncio.create_task(ws.close(code, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
