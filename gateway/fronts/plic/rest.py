"""The seed's REST API: ``/rooms`` with ``Authorization: Bearer <Supabase JWT>``.

Every answer is ``{"error_message": null|string, "data": …}``; errors keep that shape with an
HTTP status (400 bad body, 401 no or bad token, 403 not owner/participant, 404 unknown room,
429 too many requests). Owns HTTP ↔ ``rooms.PlicRooms``; must not log tokens or bodies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.fronts import http
from shared.config import Settings

from . import auth, codec
from .rooms import PlicRooms, RoomError

REST_WINDOW_MS = 1000
REST_PER_SECOND = 20  # REST requests per user per second, across replicas
MAX_BODY_BYTES = 64 * 1024

Handler = Callable[[web.Request, str], Awaitable[Any]]


def answer(data: Any = None, error: str | None = None, status: int = 200) -> web.Response:
    return web.Response(body=codec.reply(data, error), status=status, content_type="application/json")


class Rest:
    def __init__(self, settings: Settings, rooms: PlicRooms) -> None:
        self.settings = settings
        self.rooms = rooms

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/rooms", self._wrap(self.create)),
            web.get("/rooms", self._wrap(self.list)),
            web.put("/rooms", self._wrap(self.update)),
            web.delete("/rooms/{id}", self._wrap(self.delete)),
            web.get("/rooms/{id}", self._wrap(self.info)),
        ]

    def _wrap(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def run(request: web.Request) -> web.Response:
            token = auth.bearer(request.headers.get("Authorization"))
            if not token:
                return answer(error="No authentication token provided", status=401)
            try:
                user_id = auth.user_of(token, self.settings.plic_jwt_secret)
            except auth.InvalidToken:
                return answer(error="Token validation failed", status=401)
            hits = await self.rooms.store.counters.hit(f"plic:rest:{user_id}", REST_WINDOW_MS)
            if hits > REST_PER_SECOND:
                return answer(error=f"Too many requests: at most {REST_PER_SECOND} per second", status=429)
            try:
                return answer(await handler(request, user_id))
            except codec.BadBody as error:
                return answer(error=str(error), status=400)
            except RoomError as error:
                return answer(error=error.message, status=error.status)

        return run

    async def _body(self, request: web.Request) -> bytes:
        body = await http.read_body(request, MAX_BODY_BYTES)
        if body is None:
            raise codec.BadBody(f"Bodies must be at most {MAX_BODY_BYTES} bytes")
        return body

    async def create(self, request: web.Request, user_id: str) -> int:
        body = await self._body(request)
        return await self.rooms.create(user_id, codec.parse_create(body, self.settings.plic_max_participants))

    async def list(self, request: web.Request, user_id: str) -> list[dict[str, Any]]:
        return await self.rooms.list_for(user_id)

    async def update(self, request: web.Request, user_id: str) -> None:
        body = await self._body(request)
        await self.rooms.update(user_id, codec.parse_update(body, self.settings.plic_max_participants))

    async def delete(self, request: web.Request, user_id: str) -> None:
        await self.rooms.delete(codec.parse_room_id(request.match_info["id"]), user_id)

    async def info(self, request: web.Request, user_id: str) -> dict[str, Any]:
        return await self.rooms.info(codec.parse_room_id(request.match_info["id"]), user_id)
