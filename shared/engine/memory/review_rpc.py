"""In-process :class:`~shared.engine.review_rpc.ReviewRpc`: servers take turns answering requests."""

from __future__ import annotations

import asyncio
import contextlib

from shared.engine.review_rpc import ReviewHandler, ReviewRpc, ReviewServer


class MemoryReviewServer(ReviewServer):
    def __init__(self, servers: list[MemoryReviewServer], handler: ReviewHandler, concurrency: int) -> None:
        self._servers = servers  # the rpc's serving list, which this server leaves on stop
        self._handler = handler
        self._slots = asyncio.Semaphore(concurrency)

    async def answer(self, data: bytes) -> bytes | None:
        async with self._slots:
            return await self._handler(data)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self._servers.remove(self)


class MemoryReviewRpc(ReviewRpc):
    def __init__(self) -> None:
        self._servers: list[MemoryReviewServer] = []
        self._turn = 0

    async def request(self, data: bytes, timeout: float) -> bytes | None:
        if not self._servers:
            return None  # nobody serves reviews: the same outcome as the broker's expired request
        self._turn += 1  # competing servers take turns, like consumers of one queue
        server = self._servers[self._turn % len(self._servers)]
        try:
            return await asyncio.wait_for(server.answer(bytes(data)), timeout)
        except Exception:  # a timeout or a failing server: the caller falls back
            return None

    async def serve(self, handler: ReviewHandler, concurrency: int) -> ReviewServer:
        server = MemoryReviewServer(self._servers, handler, concurrency)
        self._servers.append(server)
        return server
