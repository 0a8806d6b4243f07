"""A small IVS chat client for tests: real WebSocket, the SDK's frame shapes."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol


class ChatClient:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []  # everything received, in order

    @classmethod
    async def open(cls, url: str, token: str) -> ChatClient:
        # max_queue=None: a test client that does not read its frames must still close promptly
        # (a full queue stops reading the socket, and the server's close frame waits behind it).
        ws = await connect(url, subprotocols=[Subprotocol(token)], open_timeout=5, max_queue=None)
        assert ws.subprotocol == token  # the SDK aborts without the echo
        return cls(ws)

    async def send(self, action: str, **fields: Any) -> str:
        request_id = fields.pop("RequestId", None) or str(uuid.uuid4())
        await self.ws.send(json.dumps({"Action": action, "RequestId": request_id, **fields}))
        return request_id

    async def send_message(self, content: str, **fields: Any) -> str:
        return await self.send("SEND_MESSAGE", Content=content, **fields)

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.frames.append(frame)
        return frame

    async def expect(self, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """Receive until a frame has every given top-level field value."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no frame matching {match}; got {self.frames[-5:]}")
            frame = await self.recv(remaining)
            if all(frame.get(k) == v for k, v in match.items()):
                return frame

    async def drain(self, quiet: float = 0.5) -> list[dict[str, Any]]:
        """Receive until nothing arrives for ``quiet`` seconds; return what came."""
        got = []
        while True:
            try:
                got.append(await self.recv(quiet))
            except TimeoutError:
                return got

    async def close(self) -> None:
        await self.ws.close()
