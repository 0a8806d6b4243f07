"""A seed 004 (PLIC-Chat) client written only from its document: aiohttp REST with a Supabase-style HS256 JWT
(``Authorization: Bearer``), the WebSocket ``/?token=``, ``SendMessage`` frames and the ``Disconnection`` frame
before each close."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import jwt

from parley.embedded import Node

SECRET = "plic-e2e-secret-plic-e2e-secret-0123456789"


def token(user: str, *, secret: str = SECRET, ttl: int = 600) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time()) + ttl, "aud": "authenticated"}, secret, algorithm="HS256")


class Plic:
    """What a PLIC-Chat client does, from the seed document."""

    def __init__(self, node: Node, http: aiohttp.ClientSession) -> None:
        self.base = f"http://127.0.0.1:{node.fronts['plic'].port}"
        self.http = http

    async def call(self, method: str, path: str, user: str | None, body: Any = None, **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token(user)}"} if user else {}
        headers.update(kw.pop("headers", {}))
        data = json.dumps(body) if body is not None and not isinstance(body, bytes) else body
        async with self.http.request(method, self.base + path, data=data, headers=headers) as response:
            return response.status, await response.json()

    async def create(self, owner: str, users: list[str], apartment_id: int | None = None) -> int:
        status, body = await self.call("POST", "/rooms", owner, {"users": users, "apartment_id": apartment_id})
        assert status == 200 and body["error_message"] is None, body
        assert isinstance(body["data"], int)
        return int(body["data"])

    async def ws(self, user: str | None = None, raw_token: str | None = None) -> aiohttp.ClientWebSocketResponse:
        query = "" if user is None and raw_token is None else f"?token={raw_token or token(user or '')}"
        return await self.http.ws_connect(self.base.replace("http", "ws") + "/" + query)


async def recv(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> dict[str, Any]:
    msg = await ws.receive(timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    body: dict[str, Any] = json.loads(msg.data)
    return body


async def closed_with(ws: aiohttp.ClientWebSocketResponse, code: int) -> dict[str, Any]:
    """The seed's Disconnection frame, then the close with ``code``."""
    frame = await recv(ws)
    assert frame["type"] == "Disconnection" and frame["data"]["code"] == code, frame
    msg = await ws.receive(5)
    # the server's close frame; aiohttp's close_code may later say 1006 if the server drops the
    # TCP connection while the client's autoclose reply is still draining
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == code, msg
    return frame


def send(room_id: int, message: str, temp: str) -> str:
    return json.dumps(
        {"type": "SendMessage", "data": {"room_id": room_id, "message": message, "message_temp_id": temp}}
    )
