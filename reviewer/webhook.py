"""HTTP review handlers: POST the IVS request JSON, return the response body.

One ``aiohttp.ClientSession`` per reviewer process, so keep-alive connections to a handler are
reused across reviews (a fresh TCP/TLS handshake per message would eat the 200 ms budget).

Rooms' handler URLs are chosen by whoever holds API keys, so a :class:`Webhook` with
``allowed_networks`` calls only addresses ``shared.address_policy`` accepts. A literal
IP host is judged before the request; a name is judged by :class:`GuardedResolver`, which the
connector resolves through and then connects to exactly the addresses it returned - so a name
that resolves to a public address when checked and to 169.254.169.254 a moment later (DNS
rebinding) cannot get through. Redirects are never followed (``allow_redirects=False``): a 3xx
is a non-2xx answer, i.e. an invocation error. No proxy from the environment (``trust_env``
stays False): the connection goes to the checked address, not to a proxy that resolves again.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from reviewer.protocol import MAX_RESPONSE_BYTES, HandlerRefused, InvalidResponse, InvocationError
from shared import address_policy
from shared.address_policy import Networks

_HEADERS = {"Content-Type": "application/json", "User-Agent": "parley-reviewer"}


class GuardedResolver(AbstractResolver):
    """Resolves through ``inner`` (aiohttp's default unless given: the tests' seam) and keeps only
    the answers the address policy accepts; raises :class:`HandlerRefused` when none is left."""

    def __init__(self, allowed: Networks, inner: AbstractResolver | None = None) -> None:
        self._allowed = allowed
        self._inner = inner
        self._owns_inner = inner is None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = DefaultResolver()  # needs the running loop: made on first use
        answers = await self._inner.resolve(host, port, family)
        kept: list[ResolveResult] = []
        refusal = ""
        for answer in answers:
            problem = address_policy.resolved_refusal(answer["host"], self._allowed)
            if problem is None:
                kept.append(answer)
            else:
                refusal = f"resolved to {answer['host']}: {problem}"
        if answers and not kept:
            # Not an OSError: aiohttp passes it through unwrapped, and the service counts it.
            raise HandlerRefused(refusal)
        return kept

    async def close(self) -> None:
        if self._inner is not None and self._owns_inner:
            await self._inner.close()


class Webhook:
    """POSTs to handler URLs. ``allowed_networks=None`` means trusted destinations (operator
    configuration: ``PARLEY_REVIEW_LAMBDA_MAP`` targets) that skip the address policy."""

    def __init__(
        self,
        concurrency: int,
        allowed_networks: Networks | None = None,
        *,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._concurrency = concurrency
        self._allowed = allowed_networks
        self._given_resolver = resolver  # the caller's to close, not ours
        self._resolver: AbstractResolver | None = None
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if self._resolver is None:
                if self._allowed is not None:
                    self._resolver = GuardedResolver(self._allowed, self._given_resolver)
                else:
                    self._resolver = self._given_resolver or DefaultResolver()
            # The pool matches the reviewer's concurrency: never more sockets than reviews in flight.
            connector = aiohttp.TCPConnector(
                limit=self._concurrency, keepalive_timeout=30, ttl_dns_cache=60, resolver=self._resolver
            )
            self._session = aiohttp.ClientSession(connector=connector, headers=_HEADERS, trust_env=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:  # a connector given a resolver leaves closing it to us
            if self._resolver is not self._given_resolver:
                await self._resolver.close()
            self._resolver = None

    def _target(self, url: str) -> URL:
        """The URL object aiohttp will request, its host judged as aiohttp will use it."""
        try:
            target = URL(url)
        except (ValueError, TypeError, IndexError) as exc:  # IndexError: yarl, on some broken authorities
            raise InvocationError("invalid handler URL") from exc
        if self._allowed is not None:
            refusal = address_policy.host_refusal(target.raw_host or "", self._allowed)
            if refusal is not None:
                raise HandlerRefused(refusal)
        return target

    async def post(self, url: str, payload: dict[str, Any], timeout: float) -> bytes:
        """The 2xx response body; :class:`InvocationError` when the handler could not be reached
        or answered non-2xx (:class:`HandlerRefused` when the address policy refused it). A
        timeout surfaces as ``TimeoutError`` (also an invocation error)."""
        target = self._target(url)
        body = json.dumps(payload, separators=(",", ":")).encode()
        try:
            async with self._client().post(
                target, data=body, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False
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
