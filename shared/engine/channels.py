"""A :class:`~shared.engine.fanout.Subscription` over a hub of named channels.

Both fan-out engines keep one hub per process (the Redis subscriber connection, or an in-process
table) that maps a channel name to its listeners; a subscription is the set of channels one
gateway added there. Internal to the engines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from shared.engine.fanout import DataListener, RoomListener, Subscription


class ChannelHub(Protocol):
    async def add(self, channel: bytes, listener: DataListener) -> None:
        """Call ``listener`` with every message on ``channel`` from now on."""

    async def remove(self, channel: bytes, listener: DataListener) -> None:
        """Stop calling ``listener`` for ``channel`` (no-op when it was not added)."""


class HubSubscription(Subscription):
    def __init__(self, hub: ChannelHub, room_channel: Callable[[str], bytes], on_room: RoomListener | None) -> None:
        self._hub = hub
        self._room_channel = room_channel
        self._on_room = on_room
        self._rooms: dict[str, DataListener] = {}
        self._channels: list[tuple[bytes, DataListener]] = []

    async def listen(self, channel: bytes, listener: DataListener) -> None:
        """Add a channel other than a room's (the gateway's own, control) until ``close``."""
        await self._hub.add(channel, listener)
        self._channels.append((channel, listener))

    async def add_room(self, room_id: str) -> None:
        if self._on_room is None or room_id in self._rooms:
            return
        on_room = self._on_room

        def listener(data: bytes) -> None:
            on_room(room_id, data)

        self._rooms[room_id] = listener
        await self._hub.add(self._room_channel(room_id), listener)

    async def remove_room(self, room_id: str) -> None:
        listener = self._rooms.pop(room_id, None)
        if listener is not None:
            await self._hub.remove(self._room_channel(room_id), listener)

    async def close(self) -> None:
        for room_id in list(self._rooms):
            await self.remove_room(room_id)
        for channel, listener in self._channels:
            await self._hub.remove(channel, listener)
        self._channels.clear()
