"""Find or create a room by name and mint a chat token for it, through the control plane's own handlers.

Everything goes through ``api.rooms`` / ``api.chat_tokens`` with the IVS parameter names and the
same model validation the SigV4 endpoints apply, so a demo room and token are exactly what
CreateRoom and CreateChatToken would have produced for an application backend.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from api import chat_tokens, rooms, throttle, validation
from api.context import ApiContext, load_room
from api.demo.inputs import TokenRequest
from api.errors import ResourceNotFoundException
from shared.protocol.models import Room
from shared.protocol.tokens import Capability

USER_CAPABILITIES = (Capability.SEND_MESSAGE,)
MODERATOR_CAPABILITIES = (Capability.SEND_MESSAGE, Capability.DELETE_MESSAGE, Capability.DISCONNECT_USER)
DEMO_TAG = "parley:demo"  # marks rooms the demo created, so an operator can tell them apart
SESSION_MINUTES = 60
_MAX_KNOWN_ROOMS = 10_000


@dataclass(frozen=True, slots=True)
class VendedToken:
    token: str
    token_expiration_time: str
    session_expiration_time: str
    user_id: str
    capabilities: tuple[str, ...]
    room: Room


class TokenVendor:
    """The demo's application backend: its own room-name table plus CreateRoom/CreateChatToken."""

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx
        # Room name -> ARN, so a token request costs one read instead of a ListRooms scan.
        self._known_rooms: dict[str, str] = {}
        # Two first visitors of a new room name at once must not create two rooms. The lock covers
        # one process, which is what `parley dev` is; with PARLEY_DEMO on several api replicas a
        # duplicate room is possible and harmless (a lookup then picks the most recently updated).
        self._create_lock = asyncio.Lock()

    async def _call(self, operation: str, params: dict[str, Any], subject: str) -> None:
        """What the SigV4 endpoint does before a handler: model validation, then the TPS limit.

        Only the calls that create something count against the TPS limits: the lookups stand for
        the application's own room table, which a real backend would keep in its database.
        """
        validation.validate(operation, params)
        if self._ctx.settings.api_throttling:
            await throttle.check(self._ctx.store, operation, subject)

    async def _find_room(self, name: str) -> Room | None:
        arn = self._known_rooms.get(name)
        if arn is not None:
            try:
                return await load_room(self._ctx, arn)
            except ResourceNotFoundException:
                del self._known_rooms[name]  # deleted through the API meanwhile: look again, or create
        params = {"name": name, "maxResults": 1}
        validation.validate("ListRooms", params)
        found = (await rooms.list_rooms(self._ctx, params))["rooms"]
        if not found:
            return None
        self._remember(name, found[0]["arn"])
        return await load_room(self._ctx, found[0]["arn"])

    def _remember(self, name: str, arn: str) -> None:
        if len(self._known_rooms) >= _MAX_KNOWN_ROOMS:
            self._known_rooms.clear()  # a cache, not the truth: the Store is searched again
        self._known_rooms[name] = arn

    async def find_or_create_room(self, name: str) -> Room:
        """The room called ``name``, created with the default limits if there is none."""
        room = await self._find_room(name)
        if room is not None:
            return room
        async with self._create_lock:
            room = await self._find_room(name)  # created by whoever held the lock before us
            if room is not None:
                return room
            params: dict[str, Any] = {"name": name, "tags": {DEMO_TAG: "true"}}
            await self._call("CreateRoom", params, "CreateRoom")
            created = await rooms.create_room(self._ctx, params)
            self._remember(name, created["arn"])
            return await load_room(self._ctx, created["arn"])

    async def vend(self, request: TokenRequest) -> VendedToken:
        """Create the room if needed and mint a token with a user's or a moderator's capabilities."""
        room = await self.find_or_create_room(request.room_name)
        capabilities = MODERATOR_CAPABILITIES if request.moderator else USER_CAPABILITIES
        params: dict[str, Any] = {
            "roomIdentifier": room.arn,
            "userId": request.user_id,
            "capabilities": list(capabilities),
            # Sender.Attributes on every message: how the page shows who wrote it.
            "attributes": {"displayName": request.display_name},
            "sessionDurationInMinutes": SESSION_MINUTES,
        }
        await self._call("CreateChatToken", params, room.id)
        minted = await chat_tokens.create_chat_token(self._ctx, params)
        return VendedToken(
            token=minted["token"],
            token_expiration_time=minted["tokenExpirationTime"],
            session_expiration_time=minted["sessionExpirationTime"],
            user_id=request.user_id,
            capabilities=capabilities,
            room=room,
        )
