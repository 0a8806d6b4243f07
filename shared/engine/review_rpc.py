"""The ``ReviewRpc`` path: a router asks any reviewer to judge a room batch and waits for its reply.

Request/reply, at most once, with a deadline. Reviewers compete for requests; a request nobody
answers in time dies (the router then applies the room's fallback), so no reviewer process is
needed for chat to flow.

Owns the interface only; engines implement it (``shared.engine.memory.review_rpc``,
``shared.engine.amqp.review_rpc``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

ReviewHandler = Callable[[bytes], Awaitable[bytes | None]]
"""Review request bytes in, verdict bytes out (None: no reply)."""


class ReviewServer(ABC):
    """A running :meth:`ReviewRpc.serve`."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop taking new requests; the ones being answered finish first (within a bound)."""


class ReviewRpc(ABC):
    @abstractmethod
    async def request(self, data: bytes, timeout: float) -> bytes | None:
        """Send review request bytes (a room batch of ``ReviewRequest``s, see
        ``shared.protocol.review``) to one reviewer and return its reply bytes (the batch's
        verdicts), or None when no answer came within ``timeout`` seconds (or the bus failed).
        Never raises."""

    @abstractmethod
    async def serve(self, handler: ReviewHandler, concurrency: int) -> ReviewServer:
        """Answer review requests with ``handler``, up to ``concurrency`` at once, competing with
        every other server of the namespace, until the result is stopped."""
