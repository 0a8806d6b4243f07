"""A seed 001 (relay) client written only from its document: a WebSocket to ``/<app>``, the
``{"from":"system","id":…}`` greeting, ``ping`` as a plain string, JSON ``{"to",…}`` frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect


class RelayClient:
    def __init__(self, ws: ClientConnection, connection_id: str) -> None:
        self.ws = ws
        self.id = connection_id
        self.frames: list[Any] = []

    @classmethod
    async def open(cls, port: int, app: str) -> RelayClient:
        ws = await connect(f"ws://127.0.0.1:{port}/{app}", open_timeout=5, max_queue=None)
        greeting = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert set(greeting) == {"from", "id"} and greeting["from"] == "system", greeting
        return cls(ws, greeting["id"])

    async def send(self, frame: Any) -> None:
        await self.ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    async def recv(self, timeout: float = 5.0) -> Any:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.frames.append(frame)
        return frame

    async def expect(self, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """Receive until a frame has every given field value (``from_`` matches ``from``)."""
        match = {("from" if k == "from_" else k): v for k, v in match.items()}
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no frame matching {match}; got {self.frames[-5:]}")
            frame = await self.recv(remaining)
            if isinstance(frame, dict) and all(frame.get(k) == v for k, v in match.items()):
                return frame

    async def drain(self, quiet: float = 0.3) -> list[Any]:
        got = []
        while True:
            try:
                got.append(await self.recv(quiet))
            except TimeoutError:
                return got

    async def close(self) -> None:
        await self.ws.close()
