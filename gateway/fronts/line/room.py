"""The line front's one parley room, and the answers the routers send about its messages.

Owns: the room every line direct message goes through (a fixed id per deployment, created on
first use with per-user inboxes, so operators can set its review handler, logging and limits
with UpdateRoom like any room), this process's subscription to it (each ``RoomDelivery`` is
decoded once per process, whatever the number of local connections), and matching a sent
action to its outcome: the room delivery carrying its frame id (accepted) or the
``ConnectionNotice`` the router sent this front (refused, with the IVS error message).

Must not: decide whether a message is accepted (the router) or write replies (``server``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from typing import Any

import structlog

from gateway.ports import GatewayBus, GatewayStore
from shared.clock import now_ms
from shared.config import Settings
from shared.engine.fanout import Subscription
from shared.engine.records import Record, RecordKind, Records
from shared.protocol.envelope import ActionEnvelope, ConnectionNotice, RoomDelivery
from shared.protocol.ids import room_arn
from shared.protocol.models import Room

log = structlog.get_logger("gateway.line")

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
FOREVER_MS = 100 * 365 * 86_400_000
MAX_ROOMS = 1 << 40


def line_room_id(settings: Settings) -> str:
    """The same Id12 on every replica of one deployment (its account and region)."""
    number = int.from_bytes(hashlib.sha256(f"parley-front-line:{settings.account_id}".encode()).digest()[:16])
    chars = []
    for _ in range(12):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(chars)


class LineRoom:
    def __init__(
        self,
        settings: Settings,
        store: GatewayStore,
        bus: GatewayBus,
        front_id: str,
        on_disconnect: Callable[[str], None] = lambda user_id: None,
    ) -> None:
        self.settings = settings
        self.on_disconnect = on_disconnect  # a user the router disconnects (DisconnectUser, BanUser)
        self.store = store
        self.bus = bus
        self.front_id = front_id
        self.room_id = line_room_id(settings)
        self._record: Record | None = None
        self._subscription: Subscription | None = None
        self._waiting: dict[str, asyncio.Future[str | None]] = {}  # frame id -> None | error text

    async def start(self) -> None:
        self._subscription = await self.bus.fanout.subscribe(self.front_id, self._on_room, self._on_notice)
        await self._subscription.add_room(self.room_id)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_result("front shutting down")

    async def record(self) -> Record:
        """The room's record, created on first use (once over every replica)."""
        if self._record is not None:
            return self._record
        found = await self.store.records.get(RecordKind.ROOM, self.room_id)
        if found is None:
            found = await self._create()
        self._record = found
        return found

    async def _create(self) -> Record:
        records = self.store.records
        if not isinstance(records, Records):  # every engine's Store holds writable records
            raise TypeError("the line front needs a Store whose records it can write")
        if not await self.store.marks.claim(f"front-room:{self.room_id}", FOREVER_MS):
            for _ in range(40):  # another replica is creating it
                await asyncio.sleep(0.05)
                found = await records.get(RecordKind.ROOM, self.room_id)
                if found is not None:
                    return found
        settings = self.settings
        created = now_ms()
        room = Room(
            id=self.room_id,
            arn=room_arn(settings.region, settings.account_id, self.room_id),
            name="line",
            create_ms=created,
            update_ms=created,
            maximum_message_rate_per_second=settings.line_room_message_rate,
            history_max_messages=settings.line_inbox_max_messages,
            history_max_age_seconds=settings.line_inbox_max_age_seconds,
            inbox_per_user=True,
            tags={"parley:front": "line"},
        ).to_record()
        await records.create(RecordKind.ROOM, self.room_id, room, created, MAX_ROOMS)
        log.info("line room created", room_id=self.room_id)
        return room

    async def send(self, action: ActionEnvelope, timeout: float) -> str | None:
        """Publish ``action`` and wait for the router's answer: None (delivered) or the error."""
        waiter: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._waiting[action.frame_id] = waiter
        try:
            await self.bus.actions.publish(action)
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return "no answer from the chat service in time; the message may still be delivered"
        finally:
            self._waiting.pop(action.frame_id, None)

    def _on_room(self, room_id: str, data: bytes) -> None:
        """Once per delivery per process: answer waiting sends, apply disconnects."""
        for item in RoomDelivery.decode(data).items:
            waiter = self._waiting.get(item.frame_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            if item.close_user_id:
                self.on_disconnect(item.close_user_id)

    def _on_notice(self, data: bytes) -> None:
        try:
            notice = ConnectionNotice.decode(data)
            frame: Any = json.loads(notice.frame)
            frame_id, message = str(frame["Id"]), str(frame.get("ErrorMessage") or "request refused")
        except Exception:  # a listener must not raise
            log.warning("unreadable connection notice")
            return
        waiter = self._waiting.get(frame_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(message)
