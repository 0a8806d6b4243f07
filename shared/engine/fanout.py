"""The ``Fanout`` path: frames from routers (and the control plane) to gateways, and notices to all.

At most once, pub/sub, three kinds of channel:

- **room** channels (router → gateways): a gateway listens on a room's channel while it holds a
  connection in that room;
- **gateway** channels (router → one gateway): a gateway always listens on its own;
- **control** (any → all): small notices such as "room X changed".

Room and gateway publishes are *ordered at call time* with the same process's store writes, as
``shared.engine.store`` states: a router's history append, publish and done marks take effect in
that order even when they leave together. A listener receives one channel's messages in publish
order; messages on different channels may arrive in either order (under Redis Cluster two
channels may live on two nodes), so nothing may rely on order across rooms.

Owns the interface only; engines implement it (``shared.engine.memory.fanout``,
``shared.engine.redis.fanout``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

RoomListener = Callable[[str, bytes], None]
"""``(room_id, RoomDelivery bytes)``."""

DataListener = Callable[[bytes], None]
"""The bytes published on a gateway or the control channel."""

ResubscribedListener = Callable[[Awaitable[None]], None]
"""Called when a lost subscription is made again (what was published meanwhile is gone), before
any message of the new one is dispatched; the awaitable completes once every channel is confirmed
again (or could not be within a timeout). Engines that cannot lose messages never call it."""


class Subscription(ABC):
    """A gateway's live subscription: its own channel plus the rooms it adds."""

    @abstractmethod
    async def add_room(self, room_id: str) -> None:
        """Start listening on ``room_id``'s channel (no-op when already listening)."""

    @abstractmethod
    async def remove_room(self, room_id: str) -> None:
        """Stop listening on ``room_id``'s channel (no-op when not listening)."""

    @abstractmethod
    async def close(self) -> None:
        """Stop listening on every channel of this subscription."""


class Fanout(ABC):
    @abstractmethod
    def publish_rooms(self, deliveries: list[tuple[str, bytes]]) -> Awaitable[None]:
        """Publish ``(room_id, RoomDelivery bytes)`` pairs, in order, in one round trip.
        Ordered at call time with the store's writes (see the module docstring)."""

    @abstractmethod
    def publish_gateway(self, gateway_id: str, data: bytes) -> Awaitable[None]:
        """Publish ``ConnectionNotice`` bytes to one gateway. Ordered at call time, like
        :meth:`publish_rooms`."""

    @abstractmethod
    async def publish_control(self, data: bytes) -> None:
        """Publish a ``ControlNotice`` to every control listener."""

    @abstractmethod
    async def subscribe(
        self,
        gateway_id: str,
        on_room: RoomListener | None,
        on_gateway: DataListener | None,
        on_control: DataListener | None = None,
        on_resubscribed: ResubscribedListener | None = None,
    ) -> Subscription:
        """Start listening on ``gateway_id``'s channel and/or the control channel (whichever
        listener is given); rooms are added later with ``add_room``. Listeners are plain
        callables run on the event loop; they must not block. ``on_resubscribed``: see
        :data:`ResubscribedListener` (a gateway fills the gap from history)."""
