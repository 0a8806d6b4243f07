"""Which parley room a relay URL names: ``ws://host:8091/<app>``.

``<app>`` is a room id (the last part of the room's ARN, so the same room is an IVS room too) or
an app name kept as a ``RELAY_APP`` alias record → ``{"room_id"}``. With ``relay_create_rooms``
(``parley dev``) an unknown name creates a room of that name and its alias on first use.
Must not: change existing rooms (the control plane owns them).
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import unquote

from gateway.ports import GatewayStore
from shared.clock import now_ms
from shared.config import Settings
from shared.engine.records import QuotaExceeded, Record, RecordKind, Records
from shared.protocol.ids import new_id, room_arn
from shared.protocol.models import DEFAULT_FALLBACK_RESULT, Room

APP_NAME = re.compile(r"[A-Za-z0-9._~-]{1,128}")  # a room name in IVS allows [a-zA-Z0-9-_]{0,128}


class RoomRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def app_name(path: str) -> str:
    """The app name in a request path, or raise :class:`RoomRefused` (400)."""
    name = unquote(path.split("?", 1)[0].strip("/"))
    if not APP_NAME.fullmatch(name):
        raise RoomRefused(400, "The URL must be /<app>: 1 to 128 of A-Z a-z 0-9 . _ ~ -")
    return name


async def resolve(store: GatewayStore, settings: Settings, name: str) -> Record:
    """The room ``name`` maps to (see the module docstring), or raise :class:`RoomRefused` (404)."""
    room = await store.records.get(RecordKind.ROOM, name)
    if room is not None:
        return room
    alias = await store.records.get(RecordKind.RELAY_APP, name)
    if alias is not None:
        room = await store.records.get(RecordKind.ROOM, str(alias.get("room_id", "")))
        if room is not None:
            return room
    records = store.records
    if not settings.relay_create_rooms or not isinstance(records, Records):
        raise RoomRefused(404, f"Unknown app {name!r}")
    # One creator per name, whichever connections and replicas race: the others wait for its alias.
    if await store.marks.claim(f"relay-app-create:{name}", CREATE_CLAIM_MS):
        return await _create(records, settings, name)
    for _ in range(int(CREATE_WAIT_S / CREATE_POLL_S)):
        await asyncio.sleep(CREATE_POLL_S)
        alias = await records.get(RecordKind.RELAY_APP, name)
        if alias is not None and (room := await records.get(RecordKind.ROOM, str(alias.get("room_id", "")))):
            return room
    raise RoomRefused(503, f"App {name!r} is being created; try again")


CREATE_CLAIM_MS = 10_000  # a creator that died leaves the name creatable again after this
CREATE_WAIT_S = 5.0
CREATE_POLL_S = 0.05


async def _create(records: Records, settings: Settings, name: str) -> Record:
    """Dev only: a room named ``name`` and its alias (the caller holds the name's claim)."""
    now = now_ms()
    room_id = new_id()
    room = Room(
        id=room_id,
        arn=room_arn(settings.region, settings.account_id, room_id),
        name=name[:128],
        create_ms=now,
        update_ms=now,
        review_fallback=DEFAULT_FALLBACK_RESULT,
        tags={"parley:relayApp": name},
    )
    try:
        await records.create(RecordKind.ROOM, room_id, room.to_record(), now, settings.max_rooms)
    except QuotaExceeded:
        raise RoomRefused(503, "Room quota reached") from None
    record = {"room_id": room_id}
    if not await records.put(RecordKind.RELAY_APP, name, record, now):
        await records.create(RecordKind.RELAY_APP, name, record, now, settings.max_rooms)
    return room.to_record()
