"""HTTP review handlers: POST the IVS request JSON, return the response body.

One ``aiohttp.ClientSession`` per reviewer process, so keep-alive connections to a handler are
reused across reviews (a fresh TCP/TLS handshake per message would eat the 200 ms budget).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from reviewer.protocol import MAX_RESPONSE_BYTES, InvalidResponse, InvocationError

_HEADERS = {"Content-Type": "application/json", "User-Agent": "parley-reviewer"}


class Webhook:
    def __init__(self, concurrency: int) -> None:
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # The pool matches the reviewer's concurrency: never more sockets than reviews in flight.
            connector = aiohttp.TCPConnector(limit=self._concurrency, keepalive_timeout=30, ttl_dns_cache=60)
            self._session = aiohttp.ClientSession(connector=connector, headers=_HEADERS)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, payload: dict[str, Any], timeout: float) -> bytes:
        """The 2xx response body; :class:`InvocationError` when the handler could not be reached
        or answered non-2xx. A timeout surfaces as ``TimeoutError`` (also an invocation error)."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        try:
            async with self._client().post(
                url, data=body, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False
            ) as response:
                if not 200 <= response.status < 300:
                    raise InvocationError(f"HTTP {response.status}")
                data = await response.content.read(MAX_RESPONSE_BYTES + 1)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            if isinstance(exc, TimeoutError):
                raise
            raise InvocationError(type(exc).__name__) from exc
        if len(data) > MAX_RESPONSE_BYTES:
            raise InvalidResponse(f"response over {MAX_RESPONSE_BYTES} bytes")
        return data
