"""What the reviewer needs of the engines, as Protocols: any engine's ``Bus`` satisfies them."""

from __future__ import annotations

from typing import Protocol

from shared.engine.review_rpc import ReviewRpc


class ReviewerBus(Protocol):
    """The review RPC: requests from the router's side (``remote``), answers from the server's."""

    @property
    def reviews(self) -> ReviewRpc: ...
