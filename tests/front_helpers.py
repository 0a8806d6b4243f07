"""Stand-ins for the sockets and the subscription of the aiohttp fronts' hubs (groupschat, plic),
so their fan-out is tested without sockets."""

from __future__ import annotations

from shared.engine.fanout import Subscription


class FakeTransport:
    def __init__(self, buffered: int = 0) -> None:
        self.writes: list[bytes] = []
        self.buffered = buffered
        self.aborted = False

    def is_closing(self) -> bool:
        return self.aborted

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def abort(self) -> None:
        self.aborted = True


class FakeWs:
    closed = False

    def __init__(self) -> None:
        self.closes: list[int] = []

    async def close(self, *, code: int, message: bytes) -> bool:
        self.closes.append(code)
        return True


class FakeSubscription(Subscription):
    def __init__(self) -> None:
        self.rooms: set[str] = set()

    async def add_room(self, room_id: str) -> None:
        self.rooms.add(room_id)

    async def remove_room(self, room_id: str) -> None:
        self.rooms.discard(room_id)

    async def close(self) -> None:
        self.rooms.clear()
